import type { ModelConfig } from '../model/config.ts';
import { linearModules } from '../model/layout.ts';
import type { Adapter, LoraModule } from '../adapters/read.ts';
import { IN, loraInputs, vlmInputs } from '../graph/io.ts';
import { ALL_FEATURES, type GraphFeatures } from '../graph/adapters.ts';

type VlmAdapter = Extract<Adapter, { kind: 'vlm' }>;
type LoraAdapter = Extract<Adapter, { kind: 'lora' }>;

/** A float32 graph input: data plus dims. */
export interface Feed {
  data: Float32Array;
  dims: number[];
}

/**
 * The adapters that running rows use, stacked into the bank tensors the graph takes (io.ts), on
 * shelves: a run feeds one shelf, so adapters of very different sizes sit on different shelves and
 * a small one's rows never pay for a large one's padding (the batch policy decides the shelves:
 * generation/size-classes.ts). Within a shelf, slots are kept compact, [0, U), so every run feeds
 * plain views with no copy, and smaller bottlenecks, ranks and task-token counts are zero-padded
 * to the shelf's largest, which is exact: ReLU(0) = 0 and zero rows of A/B add nothing.
 *
 * A slot is claimed when the first row of an adapter starts and released when its last row ends;
 * adapters that are not running cost nothing per step.
 */
export class AdapterBank {
  private readonly shelves = new Map<number, Shelf>();
  private readonly users = new Map<string, { adapter: Adapter; rows: number; shelf: number }>();
  /** What shelf() gives for a key with no adapters; never added to. */
  private empty?: Shelf;

  constructor(
    private readonly c: ModelConfig,
    private readonly features: GraphFeatures = ALL_FEATURES,
  ) {}

  /** A row of `adapter` starts; its first row puts the adapter on `shelf`. */
  acquire(adapter: Adapter, shelf = 0): void {
    if (!this.features[adapter.kind])
      throw new Error(`this engine's graph was built without ${adapter.kind.toUpperCase()} adapters`);
    const user = this.users.get(adapter.id);
    if (user) return void user.rows++;
    this.shelf(shelf, true).add(adapter);
    this.users.set(adapter.id, { adapter, rows: 1, shelf });
  }

  release(id: string): void {
    const user = this.users.get(id);
    if (!user) throw new Error(`adapter ${id} is not in the bank`);
    if (--user.rows > 0) return;
    this.users.delete(id);
    this.takeOff(user.shelf, id);
  }

  /** Moves adapters to the shelves given (by id); those not named stay where they are. */
  regroup(shelves: ReadonlyMap<string, number>): void {
    for (const [id, user] of this.users) {
      const to = shelves.get(id);
      if (to === undefined || to === user.shelf) continue;
      this.takeOff(user.shelf, id);
      this.shelf(to, true).add(user.adapter);
      user.shelf = to;
    }
  }

  /** Where a row's adapter sits: its shelf, bank and slot. */
  slotOf(id: string): { shelf: number; kind: 'vlm' | 'lora'; slot: number; taskTokens: number } {
    const user = this.users.get(id);
    if (!user) throw new Error(`adapter ${id} is not in the bank`);
    return { shelf: user.shelf, ...this.shelf(user.shelf).slotOf(id) };
  }

  /**
   * A shelf's bank tensors; for a key with no adapters (a run of base-model rows), one empty shelf,
   * the same every time, so that a copy of its tensors elsewhere (DeviceBanks) is made once.
   */
  shelf(key = 0, create = false): Shelf {
    let shelf = this.shelves.get(key);
    if (!shelf && create) this.shelves.set(key, (shelf = new Shelf(this.c, this.features)));
    return shelf ?? (this.empty ??= new Shelf(this.c, this.features));
  }

  /** Every shelf shelf() can give now: those with adapters, and the empty one. */
  liveShelves(): Shelf[] {
    return [...this.shelves.values(), ...(this.empty ? [this.empty] : [])];
  }

  private takeOff(key: number, id: string): void {
    const shelf = this.shelves.get(key)!;
    shelf.remove(id);
    // An emptied default shelf keeps its layout (the next adapter of the same size costs one copy);
    // another is dropped with its memory.
    if (key !== 0 && !shelf.vlmSlots && !shelf.loraSlots) this.shelves.delete(key);
  }

  /** Shelf 0's slots, task columns and feeds (the only shelf when every adapter has one size class). */
  get vlmSlots(): number {
    return this.shelf(0).vlmSlots;
  }
  get loraSlots(): number {
    return this.shelf(0).loraSlots;
  }
  get taskColumns(): number {
    return this.shelf(0).taskColumns;
  }
  feeds(): Map<string, Feed> {
    return this.shelf(0).feeds();
  }
}

/** The VLM and LoRA slots of one shelf: the bank tensors of one run. */
export class Shelf {
  private readonly vlm: VlmBank;
  private readonly lora: LoraBank;
  /** Changes whenever the shelf's tensors do: a copy of them elsewhere (DeviceBanks) is current while it matches. */
  version = 0;

  constructor(
    c: ModelConfig,
    private readonly features: GraphFeatures,
  ) {
    this.vlm = new VlmBank(c);
    this.lora = new LoraBank(c);
  }

  add(adapter: Adapter): void {
    (adapter.kind === 'vlm' ? this.vlm : this.lora).add(adapter as never);
    this.version++;
  }

  remove(id: string): void {
    if (!this.vlm.remove(id)) this.lora.remove(id);
    this.version++;
  }

  slotOf(id: string): { kind: 'vlm' | 'lora'; slot: number; taskTokens: number } {
    const v = this.vlm.slotOf(id);
    if (v >= 0) return { kind: 'vlm', slot: v, taskTokens: this.vlm.taskCount(v) };
    const l = this.lora.slotOf(id);
    if (l >= 0) return { kind: 'lora', slot: l, taskTokens: 0 };
    throw new Error(`adapter ${id} is not in the bank`);
  }

  get vlmSlots(): number {
    return this.vlm.size;
  }
  get loraSlots(): number {
    return this.lora.size;
  }
  /** Task-token columns every row's logits carry (the largest active count). */
  get taskColumns(): number {
    return this.vlm.maxTasks;
  }

  /** The bank inputs of the graph (of the adapter kinds it serves). */
  feeds(): Map<string, Feed> {
    return new Map([...(this.features.vlm ? this.vlm.feeds() : []), ...(this.features.lora ? this.lora.feeds() : [])]);
  }
}

/** Slots of one adapter kind, with the source adapters kept to rebuild on a layout change. */
abstract class Bank<A extends Adapter> {
  protected slots: A[] = [];
  protected capacity = 0;

  get size(): number {
    return this.slots.length;
  }

  slotOf(id: string): number {
    return this.slots.findIndex((a) => a.id === id);
  }

  add(adapter: A): void {
    this.slots.push(adapter);
    if (this.slots.length > this.capacity || this.needsRelayout()) this.relayout(this.fitCapacity());
    else this.write(this.slots.length - 1, adapter);
  }

  /** Removes an adapter; the last slot moves into its place so slots stay compact. */
  remove(id: string): boolean {
    const s = this.slotOf(id);
    if (s < 0) return false;
    const last = this.slots.pop()!;
    if (s < this.slots.length) this.slots[s] = last;
    // An emptied bank keeps its layout: the next adapter of the same size then costs one copy.
    if (!this.slots.length) return true;
    if (this.needsRelayout()) this.relayout(this.fitCapacity());
    else if (s < this.slots.length) this.write(s, last);
    return true;
  }

  /** Room for the active slots plus headroom, so that a few arrivals do not each re-lay everything. */
  private fitCapacity(): number {
    const n = this.slots.length;
    return n <= this.capacity && this.capacity <= 2 * n + 2 ? this.capacity : n + Math.ceil(n / 2) + 1;
  }

  /** Whether the padded sizes no longer fit the active adapters (grow, or shrink to save work). */
  protected abstract needsRelayout(): boolean;
  protected abstract relayout(capacity: number): void;
  protected abstract write(slot: number, adapter: A): void;
  abstract feeds(): Map<string, Feed>;
}

class VlmBank extends Bank<VlmAdapter> {
  private m = 0;
  maxTasks = 0;
  private layers: Array<Record<'down' | 'downB' | 'up' | 'upB', Float32Array>> = [];
  private taskIn = new Float32Array(0);
  private taskHead = new Float32Array(0);

  constructor(private readonly c: ModelConfig) {
    super();
  }

  taskCount(slot: number): number {
    return this.slots[slot].taskTokens.length;
  }

  protected needsRelayout(): boolean {
    const m = Math.max(0, ...this.slots.map((a) => a.bottleneck));
    const k = Math.max(0, ...this.slots.map((a) => a.taskTokens.length));
    return m !== this.m || k !== this.maxTasks;
  }

  protected relayout(capacity: number): void {
    const d = this.c.hiddenSize;
    this.m = Math.max(0, ...this.slots.map((a) => a.bottleneck));
    this.maxTasks = Math.max(0, ...this.slots.map((a) => a.taskTokens.length));
    this.capacity = capacity;
    const m = this.m;
    this.layers = Array.from({ length: this.c.numLayers }, () => ({
      down: new Float32Array(capacity * d * m),
      downB: new Float32Array(capacity * m),
      up: new Float32Array(capacity * m * d),
      upB: new Float32Array(capacity * d),
    }));
    this.taskIn = new Float32Array((1 + capacity * this.maxTasks) * d);
    this.taskHead = new Float32Array(capacity * d * this.maxTasks);
    this.slots.forEach((a, s) => this.write(s, a));
  }

  protected write(s: number, a: VlmAdapter): void {
    const d = this.c.hiddenSize;
    const m = this.m;
    const am = a.bottleneck;
    this.layers.forEach((bank, l) => {
      const src = a.layers[l];
      // Slot tensors: down [d, m], up [m, d]; an adapter with a smaller bottleneck is zero-padded.
      const down = bank.down.subarray(s * d * m, (s + 1) * d * m);
      if (am === m) down.set(src.downT);
      else
        for (let i = 0; i < d; i++)
          down
            .subarray(i * m, (i + 1) * m)
            .fill(0)
            .set(src.downT.subarray(i * am, (i + 1) * am));
      const up = bank.up.subarray(s * m * d, (s + 1) * m * d);
      up.set(src.upT);
      if (am < m) up.fill(0, am * d);
      bank.downB
        .subarray(s * m, (s + 1) * m)
        .fill(0)
        .set(src.downB);
      bank.upB.set(src.upB, s * d);
    });
    const k = this.maxTasks;
    const rows = this.taskIn.subarray((1 + s * k) * d, (1 + (s + 1) * k) * d).fill(0);
    rows.set(a.taskEmbeddings);
    const head = this.taskHead.subarray(s * d * k, (s + 1) * d * k).fill(0);
    for (let t = 0; t < a.taskTokens.length; t++)
      for (let i = 0; i < d; i++) head[i * k + t] = a.taskEmbeddings[t * d + i];
  }

  feeds(): Map<string, Feed> {
    const d = this.c.hiddenSize;
    const u = this.slots.length;
    const m = this.m;
    const k = this.maxTasks;
    const feeds = new Map<string, Feed>();
    for (let l = 0; l < this.c.numLayers; l++) {
      const io = vlmInputs(l);
      const bank = this.layers[l];
      const view = (data: Float32Array | undefined, dims: number[]): Feed => ({
        data: data
          ? data.subarray(
              0,
              dims.reduce((x, y) => x * y, 1),
            )
          : new Float32Array(0),
        dims,
      });
      feeds.set(io.down, view(bank?.down, [u, d, m]));
      feeds.set(io.downB, view(bank?.downB, [u, 1, m]));
      feeds.set(io.up, view(bank?.up, [u, m, d]));
      feeds.set(io.upB, view(bank?.upB, [u, 1, d]));
    }
    const taskRows = 1 + u * k;
    feeds.set(IN.taskEmbeddings, {
      data: this.taskIn.length ? this.taskIn.subarray(0, taskRows * d) : new Float32Array(d),
      dims: [taskRows, d],
    });
    feeds.set(IN.taskHead, { data: this.taskHead.subarray(0, u * d * k), dims: [u, d, k] });
    return feeds;
  }
}

class LoraBank extends Bank<LoraAdapter> {
  /** Padded rank of each "layer:module" (0 when no active adapter adapts it). */
  private ranks = new Map<string, number>();
  private a = new Map<string, Float32Array>();
  private b = new Map<string, Float32Array>();

  constructor(private readonly c: ModelConfig) {
    super();
  }

  private wantedRanks(): Map<string, number> {
    const ranks = new Map<string, number>();
    for (const adapter of this.slots) {
      for (const mod of adapter.modules) {
        const key = `${mod.layer}:${mod.module}`;
        ranks.set(key, Math.max(ranks.get(key) ?? 0, mod.rank));
      }
    }
    return ranks;
  }

  protected needsRelayout(): boolean {
    const wanted = this.wantedRanks();
    if (wanted.size !== this.ranks.size) return true;
    for (const [key, r] of wanted) if (this.ranks.get(key) !== r) return true;
    return false;
  }

  protected relayout(capacity: number): void {
    this.ranks = this.wantedRanks();
    this.capacity = capacity;
    this.a.clear();
    this.b.clear();
    for (let l = 0; l < this.c.numLayers; l++) {
      for (const mod of linearModules(this.c)) {
        const r = this.ranks.get(`${l}:${mod.name}`) ?? 0;
        this.a.set(`${l}:${mod.name}`, new Float32Array(capacity * mod.in * r));
        this.b.set(`${l}:${mod.name}`, new Float32Array(capacity * r * mod.out));
      }
    }
    this.slots.forEach((adapter, s) => this.write(s, adapter));
  }

  protected write(s: number, adapter: LoraAdapter): void {
    const byKey = new Map<string, LoraModule>(adapter.modules.map((mod) => [`${mod.layer}:${mod.module}`, mod]));
    for (let l = 0; l < this.c.numLayers; l++) {
      for (const spec of linearModules(this.c)) {
        const key = `${l}:${spec.name}`;
        const r = this.ranks.get(key) ?? 0;
        if (r === 0) continue;
        // Slot tensors: a [in, r], b [r, out]; a smaller rank is zero-padded.
        const a = this.a.get(key)!.subarray(s * spec.in * r, (s + 1) * spec.in * r);
        const b = this.b
          .get(key)!
          .subarray(s * r * spec.out, (s + 1) * r * spec.out)
          .fill(0);
        const mod = byKey.get(key);
        if (!mod) {
          a.fill(0);
          continue;
        }
        if (mod.rank === r) a.set(mod.aT);
        else
          for (let i = 0; i < spec.in; i++)
            a.subarray(i * r, (i + 1) * r)
              .fill(0)
              .set(mod.aT.subarray(i * mod.rank, (i + 1) * mod.rank));
        b.set(mod.bT);
      }
    }
  }

  feeds(): Map<string, Feed> {
    const u = this.slots.length;
    const feeds = new Map<string, Feed>();
    for (let l = 0; l < this.c.numLayers; l++) {
      for (const spec of linearModules(this.c)) {
        const key = `${l}:${spec.name}`;
        const r = this.ranks.get(key) ?? 0;
        const io = loraInputs(l, spec.name);
        const a = this.a.get(key);
        const b = this.b.get(key);
        feeds.set(io.a, { data: a ? a.subarray(0, u * spec.in * r) : new Float32Array(0), dims: [u, spec.in, r] });
        feeds.set(io.b, { data: b ? b.subarray(0, u * r * spec.out) : new Float32Array(0), dims: [u, r, spec.out] });
      }
    }
    return feeds;
  }
}
