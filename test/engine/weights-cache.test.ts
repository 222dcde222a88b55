import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import zlib from 'node:zlib';
import {
  copyFileSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, readJson } from '../helpers/fixtures.ts';
import { greedyBatch } from '../helpers/engine.ts';
import { versa } from '../helpers/cli.ts';
import { openModel } from '../../src/engine/loaders/load.ts';
import { openRuntime } from '../../src/engine/engine.ts';
import { ModelRunner } from '../../src/engine/runtime/runner.ts';
import { buildDecoderGraph } from '../../src/engine/graph/build.ts';
import {
  cacheKey,
  cachedWeights,
  listCache,
  type CacheOutcome,
  type ServedWeight,
} from '../../src/engine/weights/cache.ts';
import type { StoredTensor } from '../../src/engine/weights/stored.ts';
import { FLOAT32, type WeightFormat } from '../../src/engine/weights/quantize.ts';

const INT4: WeightFormat = { ...FLOAT32, quantize: 'int4', block: 16 };
const NO_ADAPTERS = { adapterKinds: [] as never[] };

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'versa-weights-cache-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let folders = 0;
const freshDir = () => join(root, `cache-${folders++}`);

/** A copy of stories260K that a test may touch or rewrite. */
function storiesCopy(): string {
  const path = join(root, `stories-${folders++}.bin`);
  copyFileSync(fixture('stories260k/model.bin'), path);
  return path;
}

/** The engine's load path, counting the checkpoint tensors it reads. */
async function load(model: string, dir: string, format: WeightFormat = FLOAT32) {
  const opened = openModel(model);
  let reads = 0;
  const counted = new Map<string, StoredTensor>(
    [...opened.weights].map(([name, t]) => [name, { dims: t.dims, dtype: t.dtype, bytes: () => (reads++, t.bytes()) }]),
  );
  let outcome: CacheOutcome | undefined;
  try {
    const runner = await ModelRunner.create(opened.config, counted, {
      threads: 2,
      format,
      features: { vlm: false, lora: false },
      weightBytes: (graph) => {
        const served = cachedWeights(graph.weights, cacheKey(model, opened.files, format), { dir });
        outcome = served.outcome;
        return served;
      },
    });
    return { runner, outcome, reads };
  } finally {
    opened.close();
  }
}

type Entry = { offset: number; length: number };
const cacheFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.weights'));

describe('the converted-weights cache', () => {
  it('a second load reads the cache file, not the checkpoint', async () => {
    const dir = freshDir();
    const first = await load(fixture('stories260k/model.bin'), dir, INT4);
    expect(first.outcome).toBe('written');
    expect(first.reads).toBeGreaterThan(10);
    const second = await load(fixture('stories260k/model.bin'), dir, INT4);
    expect(second.outcome).toBe('read');
    expect(second.reads).toBe(0);
    expect(cacheFiles(dir)).toHaveLength(1);
    const [a, b] = [first, second].map(async (l) => (await greedyBatch(l.runner, [{ prompt: [1] }], 40)).logits[0]);
    expect(await b).toEqual(await a); // bit for bit
    await Promise.all([first.runner.release(), second.runner.release()]);
  });

  it('is invalidated when the checkpoint changes, and keyed by the weight format', async () => {
    const dir = freshDir();
    const model = storiesCopy();
    const outcome = async (format?: WeightFormat) => {
      const l = await load(model, dir, format);
      await l.runner.release();
      return l.outcome;
    };
    expect(await outcome()).toBe('written');
    expect(await outcome(INT4)).toBe('written');
    expect(await outcome({ ...INT4, block: 32 })).toBe('written');
    expect(await outcome({ ...INT4, quantize: 'int8' })).toBe('written');
    expect(await outcome(INT4)).toBe('read');
    expect(cacheFiles(dir)).toHaveLength(4);

    // Same size, new bytes: a rewritten checkpoint is converted again, never served from the old file.
    const bytes = readFileSync(model);
    bytes.writeFloatLE(0.5, bytes.length - 4);
    writeFileSync(model, bytes);
    expect(await outcome(INT4)).toBe('written');
    const later = new Date(Date.now() + 5000);
    utimesSync(model, later, later);
    expect(await outcome(INT4)).toBe('written');
    expect(await outcome(INT4)).toBe('read');
  });

  it('rebuilds a torn or corrupt file instead of using it', async () => {
    const dir = freshDir();
    const model = fixture('stories260k/model.bin');
    const reference = await load(model, dir);
    const expected = (await greedyBatch(reference.runner, [{ prompt: [1] }], 20)).logits[0];
    await reference.runner.release();
    const [name] = cacheFiles(dir);
    const file = join(dir, name);
    const size = statSync(file).size;

    const damage: Array<[string, () => void]> = [
      ['cut short', () => truncateSync(file, Math.floor(size / 2))],
      ['empty', () => truncateSync(file, 0)],
      [
        'a flipped byte in the data',
        () => {
          // In the largest weight (padding between weights is not checksummed).
          const b = readFileSync(file);
          const headerLength = b.readUInt32LE(8);
          const header = JSON.parse(b.subarray(12, 12 + headerLength).toString('utf8'));
          const dataStart = Math.ceil((12 + headerLength) / 4096) * 4096;
          const largest = header.weights.reduce((a: Entry, w: Entry) => (w.length > a.length ? w : a));
          b[dataStart + largest.offset + (largest.length >> 1)] ^= 0x40;
          writeFileSync(file, b);
        },
      ],
      ['the end mark gone', () => truncateSync(file, size - 3)],
    ];
    for (const [what, harm] of damage) {
      harm();
      const l = await load(model, dir);
      expect(l.outcome, what).toBe('rebuilt');
      expect(l.reads, what).toBeGreaterThan(0);
      expect((await greedyBatch(l.runner, [{ prompt: [1] }], 20)).logits[0], what).toEqual(expected);
      await l.runner.release();
      expect(statSync(file).size, what).toBe(size);
      const again = await load(model, dir);
      expect(again.outcome, what).toBe('read');
      await again.runner.release();
    }
  });

  it('checksums a file once per version of it (its stamp), and again after any write to it', async () => {
    const dir = freshDir();
    const model = fixture('stories260k/model.bin');
    const crc = vi.spyOn(zlib, 'crc32');
    const loadOnce = async () => {
      crc.mockClear();
      const l = await load(model, dir);
      await l.runner.release();
      return { outcome: l.outcome, checksummed: crc.mock.calls.length > 0 };
    };
    try {
      expect(await loadOnce()).toEqual({ outcome: 'written', checksummed: true }); // of the bytes it writes
      expect(await loadOnce()).toEqual({ outcome: 'read', checksummed: false }); // the writer's stamp vouches
      expect(await loadOnce()).toEqual({ outcome: 'read', checksummed: false });
      // Rewritten with the same bytes: a new ctime, so checked again; and, since that check came
      // within a second of the change (file times tick coarsely), checked again at the next load.
      const file = join(dir, cacheFiles(dir)[0]);
      writeFileSync(file, readFileSync(file));
      expect(await loadOnce()).toEqual({ outcome: 'read', checksummed: true });
      expect(await loadOnce()).toEqual({ outcome: 'read', checksummed: true });
      // A check more than a second after the change vouches for the file from then on.
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 1500 });
      expect(await loadOnce()).toEqual({ outcome: 'read', checksummed: true });
      expect(await loadOnce()).toEqual({ outcome: 'read', checksummed: false });
      // A stamp that does not match its file's identity vouches for nothing.
      const stamp = JSON.parse(readFileSync(`${file}.checked`, 'utf8'));
      writeFileSync(`${file}.checked`, JSON.stringify({ ...stamp, file: `${stamp.file}0` }));
      expect(await loadOnce()).toEqual({ outcome: 'read', checksummed: true });
    } finally {
      vi.useRealTimers();
      crc.mockRestore();
    }
  });

  it("leaves another writer's temporary file alone, and clears one left by a writer that died", () => {
    const dir = freshDir();
    const key = (format: WeightFormat) =>
      cacheKey(fixture('stories260k/model.bin'), [fixture('stories260k/model.bin')], format);
    const weights = (fill: number): ServedWeight[] =>
      ['a', 'b'].map((name, i) => {
        const data = new Uint8Array(4096).fill(fill + i);
        return { name, path: name, type: 'uint8', dims: [4096], converted: true, bytes: () => data };
      });
    const first = cachedWeights(weights(1), key(FLOAT32), { dir });
    // Another process is writing the same entry: a half-written file under its own temporary name.
    const temp = `${first.file}.999999.0badf00d.tmp`;
    writeFileSync(temp, 'VERSAWC1 half of a file');
    rmSync(first.file);
    expect(cachedWeights(weights(1), key(FLOAT32), { dir }).outcome).toBe('written');
    expect(readFileSync(temp, 'utf8')).toBe('VERSAWC1 half of a file'); // not read, not removed
    const read = cachedWeights(weights(0), key(FLOAT32), { dir });
    expect(read.outcome).toBe('read');
    // onnxruntime reads the weights from the file itself, at page-aligned offsets (it maps them).
    const at = ['a', 'b'].map((path) => read.weightsFile!.at.get(path)!);
    expect(at.map((a) => a.offset % 4096)).toEqual([0, 0]);
    expect(at.map((a) => readFileSync(read.file)[a.offset])).toEqual([1, 2]);

    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(temp, twoHoursAgo, twoHoursAgo);
    expect(cachedWeights(weights(1), key(INT4), { dir }).outcome).toBe('written'); // a write tidies the folder
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(cacheFiles(dir)).toHaveLength(2);
  });

  it('keeps the folder within its bound, least recently used first', async () => {
    const dir = freshDir();
    const model = fixture('stories260k/model.bin');
    const use = (format: WeightFormat, maxMb: number) => {
      const opened = openModel(model);
      try {
        const graph = buildDecoderGraph(opened.config, opened.weights, { vlm: false, lora: false }, format);
        return cachedWeights(graph.weights, cacheKey(model, opened.files, format), { dir, maxMb });
      } finally {
        opened.close();
      }
    };
    const f32 = use(FLOAT32, 64);
    const int8 = use({ ...INT4, quantize: 'int8' }, 64);
    expect(use(FLOAT32, 64).outcome).toBe('read'); // float32 is now the most recently used
    const bound = (statSync(f32.file).size + statSync(int8.file).size) / 1024 / 1024 + 0.01;
    const int4 = use(INT4, bound);
    expect(int4.outcome).toBe('written');
    expect(cacheFiles(dir).sort()).toEqual([f32.file, int4.file].map((f) => f.slice(dir.length + 1)).sort());
    expect(readdirSync(dir)).not.toContain(`${int8.file.slice(dir.length + 1)}.checked`); // went with its file
    rmSync(f32.file); // by hand: its stamp is left, and cleared at the next write
    expect(use({ ...INT4, quantize: 'int8' }, bound).outcome).toBe('written');
    const kept = [int4.file, int8.file].map((f) => f.slice(dir.length + 1)).sort();
    expect(readdirSync(dir).sort()).toEqual(kept.flatMap((f) => [f, `${f}.checked`]));
    expect(use(FLOAT32, 0.01).outcome).toBe('not-written'); // larger than the bound: not kept at all
    expect(cacheFiles(dir).sort()).toEqual(kept);
  });

  it('serves the goldens exactly from the cache (stories260K and tiny-gpt2, float32 and int4)', async () => {
    const dir = freshDir();
    const stories = readJson('stories260k/expected/greedy_n200.tokens.json').tokens;
    const gpt2 = readJson('tiny-gpt2/expected/greedy_genai_gptfp32.json');
    const gpt2Prompts = gpt2.input_ids.map((p: number[]) => ({ prompt: p }));
    const gpt2Steps = gpt2.max_length - gpt2.input_ids[0].length;
    for (const quantize of ['none', 'int4'] as const) {
      for (const [model, rows, steps] of [
        [fixture('stories260k/model.bin'), [{ prompt: [1] }], 200],
        [fixture('tiny-gpt2'), gpt2Prompts, gpt2Steps],
      ] as const) {
        const run = async (weightCache?: { dir: string }) => {
          const { runner, info } = await openRuntime({ model, threads: 2, quantize, ...NO_ADAPTERS, weightCache });
          try {
            return { info, ...(await greedyBatch(runner, [...rows], steps)) };
          } finally {
            await runner.release();
          }
        };
        const fresh = await run();
        expect(fresh.info.weightCache).toBeUndefined();
        expect((await run({ dir })).info.weightCache).toBe('written');
        const cached = await run({ dir });
        expect(cached.info.weightCache, `${model} ${quantize}`).toBe('read');
        expect(cached.tokens).toEqual(fresh.tokens);
        expect(cached.logits).toEqual(fresh.logits); // bit for bit
        if (quantize === 'none' && model.endsWith('.bin')) expect(cached.tokens[0]).toEqual(stories);
        if (quantize === 'none' && !model.endsWith('.bin'))
          gpt2.expected_output.forEach((row: number[], i: number) =>
            expect([...gpt2.input_ids[i], ...cached.tokens[i]]).toEqual(row),
          );
      }
    }
  });
});

describe('concurrent first loads, and versa cache', () => {
  it('two processes loading at once leave one valid file; `versa cache ls` and `rm` show and remove it', async () => {
    const home = join(root, 'home');
    const model = join(root, 'stories');
    cpSync(fixture('stories260k'), model, { recursive: true, filter: (p) => !p.includes('adapters') });
    const env = { VERSA_HOME: home };
    const generate = () =>
      versa(['generate', '--model', join(model, 'model.bin'), '--prompt-ids', '1', '--max-tokens', '4', '--json'], {
        env,
      });
    const runs = await Promise.all([generate(), generate()]);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(runs[0].stdout).tokens).toEqual(JSON.parse(runs[1].stdout).tokens);
    const dir = join(home, 'cache');
    // one file and its stamp, no temporary left behind
    const [weights, stamp] = readdirSync(dir).sort();
    expect(readdirSync(dir)).toHaveLength(2);
    expect([weights, stamp]).toEqual([expect.stringMatching(/\.weights$/), `${weights}.checked`]);
    expect(listCache(dir)).toMatchObject([{ model: join(model, 'model.bin'), valid: true }]);

    const ls = await versa(['cache', 'ls', '--json'], { env });
    expect(ls.code, ls.stderr).toBe(0);
    const listed = JSON.parse(ls.stdout);
    expect(listed.entries).toMatchObject([
      { model: join(model, 'model.bin'), format: { float: 'float32', quantize: 'none' }, valid: true },
    ]);
    const text = await versa(['cache', 'ls'], { env });
    expect(text.stdout).toContain(listed.entries[0].id.slice(0, 12));

    const unknown = await versa(['cache', 'rm', 'ffff'], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^versa: error: no cache entry "ffff"/);
    const rm = await versa(['cache', 'rm', listed.entries[0].id.slice(0, 8), '--json'], { env });
    expect(rm.code, rm.stderr).toBe(0);
    expect(JSON.parse(rm.stdout).removed).toHaveLength(1);
    expect(readdirSync(dir)).toHaveLength(0);
  });
});
