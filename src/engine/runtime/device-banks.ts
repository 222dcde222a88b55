import ort from 'onnxruntime-node';
import { GraphBuilder } from '../graph/onnx.ts';
import type { Feed, Shelf } from './adapter-bank.ts';
import { createSession } from './session.ts';
import type { ExecutionProvider } from './providers.ts';

/** Upload graphs kept, by the names they take (the names change only when a LoRA module's rank goes to or from 0). */
const UPLOADERS = 4;

/**
 * The adapter banks' tensors in the provider's memory, copied there when a shelf changes (an adapter
 * joins or leaves) and reused by every run until then: a step uploads no adapter weights. The copy
 * is a graph of Identity nodes whose outputs stay on the device. Empty tensors (a kind no running
 * adapter has) stay on the host: there is nothing to send. A LoRA module no running adapter adapts
 * has rank 0 in the bank, a product over an empty axis, which crashes onnxruntime's WebGPU MatMul
 * (a segfault in 1.30): on the device it gets rank 1, zeros, which adds the same zero delta.
 */
export class DeviceBanks {
  /** Each shelf's copy, as of the shelf's version then. */
  private readonly copies = new Map<Shelf, { version: number; tensors: Map<string, ort.Tensor> }>();
  private readonly uploaders = new Map<string, Promise<ort.InferenceSession>>();
  /** Bytes sent to the device so far. */
  uploadedBytes = 0;

  constructor(private readonly ep: ExecutionProvider) {}

  /**
   * The shelf's bank inputs, on the device as of the shelf's current version. The copies of shelves
   * not in `live` (dropped from the bank since) are freed.
   */
  async feeds(shelf: Shelf, live: readonly Shelf[]): Promise<Map<string, ort.Tensor>> {
    for (const [other, copy] of this.copies) {
      if (live.includes(other)) continue;
      this.copies.delete(other);
      free(copy.tensors);
    }
    const held = this.copies.get(shelf);
    if (held?.version === shelf.version) return held.tensors;
    if (held) free(held.tensors);
    this.copies.delete(shelf);
    const tensors = await this.upload(shelf.feeds());
    this.copies.set(shelf, { version: shelf.version, tensors });
    return tensors;
  }

  private async upload(feeds: Map<string, Feed>): Promise<Map<string, ort.Tensor>> {
    const tensors = new Map<string, ort.Tensor>();
    const sent: string[] = [];
    for (const [name, feed] of feeds) {
      const f = name.startsWith('lora.') ? withoutEmptyRank(feed) : feed;
      tensors.set(name, new ort.Tensor('float32', f.data, f.dims));
      if (f.data.length > 0) sent.push(name);
    }
    if (sent.length === 0) return tensors;
    const uploader = await this.uploader(sent.map((n) => [n, tensors.get(n)!.dims.length]));
    for (const n of sent) this.uploadedBytes += (tensors.get(n)!.data as Float32Array).byteLength;
    const out = await uploader.run(Object.fromEntries(sent.map((n) => [n, tensors.get(n)!])));
    for (const name of sent) tensors.set(name, out[`${name}.device`] as ort.Tensor);
    return tensors;
  }

  /** The upload graph of these inputs (name and rank). */
  private uploader(inputs: Array<[string, number]>): Promise<ort.InferenceSession> {
    const key = inputs.join('\n');
    let session = this.uploaders.get(key);
    if (!session) {
      const g = new GraphBuilder();
      for (const [name, rank] of inputs) {
        const dims = Array.from({ length: rank }, (_, i) => `${name}.${i}`);
        g.input(name, 'float32', dims);
        g.output(g.op('Identity', [name]), `${name}.device`, 'float32', dims);
      }
      const outputs = inputs.map(([n]) => `${n}.device`);
      session = createSession(g.encode('bank-upload'), this.ep, { threads: 1, deviceOutputs: outputs }).then(
        (s) => s.session,
      );
      if (this.uploaders.size >= UPLOADERS) void this.drop(this.uploaders.keys().next().value!);
      this.uploaders.set(key, session);
    }
    return session;
  }

  private async drop(key: string): Promise<void> {
    const session = this.uploaders.get(key);
    this.uploaders.delete(key);
    await (await session)?.release();
  }

  async release(): Promise<void> {
    for (const copy of this.copies.values()) free(copy.tensors);
    this.copies.clear();
    await Promise.all([...this.uploaders.keys()].map((k) => this.drop(k)));
  }
}

function free(tensors: Map<string, ort.Tensor>): void {
  for (const t of tensors.values()) t.dispose();
}

/** A LoRA A [U, in, r] or B [U, r, out] of rank 0 with slots (U > 0) as rank 1, zeros. */
function withoutEmptyRank(f: Feed): Feed {
  const [slots, ...rest] = f.dims;
  if (slots === 0 || !rest.includes(0)) return f;
  const dims = [slots, ...rest.map((n) => Math.max(n, 1))];
  return { data: new Float32Array(dims.reduce((a, b) => a * b, 1)), dims };
}
