import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AdapterRef } from '../protocol/compute.ts';
import { versionSha256 } from '../compute/adapter-cache.ts';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import type { BlobStore } from '../../registry/blobs/store.ts';
import { startComputeNode } from '../compute/node.ts';
import { GPT2_SMALL, randomWeights, writeGpt2Folder, writeVlmAdapter } from '../engine/synthetic.ts';
import type { ProviderChoice } from '../engine/runtime/providers.ts';

export interface ComputeRun {
  streams: number;
  mode: 'single' | 'distinct';
  tps: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
}

export interface ComputeBenchResult {
  model: string;
  adapters: string;
  tokens_per_stream: number;
  runs: ComputeRun[];
  scale_16_vs_1: number;
  distinct_vs_single: number;
  crosstalk_free: boolean;
  /** Streams whose output differed from their single-stream output at a near-tie (not cross-talk). */
  numerical_ties: number;
  targets: Record<string, { target: string; met: boolean }>;
}

const STREAMS = [1, 4, 16, 64];
const TOKENS = 64;
const ADAPTERS = 16;

interface Stream {
  tokens: number[];
  /** Gap between the two best logprobs at each step (to tell a near-tie from cross-talk). */
  margins: number[];
  ttftMs: number;
}

/**
 * `versa bench compute`: starts a compute node on a GPT-2-small-sized model (seeded random
 * weights) with 16 random VLM adapters in its blob folder, then drives it over HTTP with 1, 4,
 * 16 and 64 concurrent streams, all on one adapter and spread over 16 adapters. Every stream's
 * greedy output is compared with the same request run alone.
 */
export async function benchCompute(
  opts: { threads?: number; ep?: ProviderChoice; log?: (line: string) => void } = {},
): Promise<ComputeBenchResult> {
  const log = opts.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'versa-bench-'));
  try {
    const c = GPT2_SMALL;
    log('writing a GPT-2-small-sized model and 16 adapters (seeded random weights)');
    writeGpt2Folder(join(dir, 'model'), c, randomWeights(c, 2));
    const refs: AdapterRef[] = [];
    const blobs = new FolderBlobStore(join(dir, 'blobs'));
    for (let i = 0; i < ADAPTERS; i++) {
      const folder = join(dir, `adapter-${i}`);
      writeVlmAdapter(folder, c, 64, 300 + i);
      refs.push(await toBlob(blobs, `bench-${i}@1`, join(folder, 'adapter.safetensors')));
    }
    log('starting the compute node');
    const node = await startComputeNode({
      token: TOKEN,
      model: join(dir, 'model'),
      ep: opts.ep,
      threads: opts.threads ?? availableParallelism(),
      maxBatch: 64,
      maxQueue: 64,
      blobs,
      preload: refs,
    });
    try {
      const prompt = (k: number) => Array.from({ length: 16 }, (_, i) => (k * 7919 + i * 104729) % c.vocabSize);
      // Only the references carry logprobs (to tell a near-tie from cross-talk); timed runs do not pay for them.
      const pick = (mode: 'single' | 'distinct', i: number, logprobs?: number) => ({
        adapter: refs[mode === 'single' ? 0 : i % ADAPTERS],
        prompt_ids: prompt(i % ADAPTERS),
        max_tokens: TOKENS,
        ignore_eos: true,
        logprobs,
      });

      log('single-stream references');
      const reference = new Map<string, Stream>();
      for (const mode of ['single', 'distinct'] as const) {
        for (let i = 0; i < ADAPTERS; i++) reference.set(`${mode}:${i}`, await stream(node.url, pick(mode, i, 2)));
      }
      await stream(node.url, pick('single', 0)); // warm-up at this size

      const runs: ComputeRun[] = [];
      let mismatches = 0;
      let ties = 0;
      for (const mode of ['single', 'distinct'] as const) {
        for (const n of STREAMS) {
          log(`${n} concurrent streams, ${mode === 'single' ? 'one adapter' : `${ADAPTERS} adapters`}`);
          const t0 = performance.now();
          const out = await Promise.all(Array.from({ length: n }, (_, i) => stream(node.url, pick(mode, i))));
          const seconds = (performance.now() - t0) / 1000;
          out.forEach((s, i) => {
            const ref = reference.get(`${mode}:${i % ADAPTERS}`)!;
            const at = s.tokens.findIndex((t, j) => t !== ref.tokens[j]);
            if (at < 0 && s.tokens.length === ref.tokens.length) return;
            if (at >= 0 && ref.margins[at] < 1e-3) ties++;
            else mismatches++;
          });
          const ttft = out.map((s) => s.ttftMs).sort((a, b) => a - b);
          runs.push({
            streams: n,
            mode,
            tps: round(out.reduce((a, s) => a + s.tokens.length, 0) / seconds),
            ttft_p50_ms: round(quantile(ttft, 0.5)),
            ttft_p99_ms: round(quantile(ttft, 0.99)),
          });
        }
      }
      const tps = (mode: string, n: number) => runs.find((r) => r.mode === mode && r.streams === n)!.tps;
      const result = {
        model: 'gpt2-small shape (124.4M params, float32, seeded random weights)',
        adapters: `${ADAPTERS} VLM adapters, bottleneck 64 (1.0 % of the base each)`,
        tokens_per_stream: TOKENS,
        runs,
        scale_16_vs_1: round(tps('single', 16) / tps('single', 1), 2),
        distinct_vs_single: round(tps('distinct', 16) / tps('single', 16), 3),
        crosstalk_free: mismatches === 0,
        numerical_ties: ties,
      };
      return {
        ...result,
        targets: {
          scale_16_vs_1: { target: '>= 6', met: result.scale_16_vs_1 >= 6 },
          distinct_vs_single: { target: '>= 0.85', met: result.distinct_vs_single >= 0.85 },
          crosstalk_free: { target: 'true', met: result.crosstalk_free },
        },
      };
    } finally {
      await node.shutdown(1000);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Puts an adapter's weights into a blob store; returns the ref the edge would send. */
/** The bench's own node answers only this run. */
const TOKEN = randomBytes(24).toString('base64url');

async function toBlob(store: BlobStore, id: string, file: string): Promise<AdapterRef> {
  const { sha256, bytes } = await store.put(new Uint8Array(readFileSync(file)));
  const files = [{ name: 'adapter.safetensors', sha256, bytes }];
  return { id, sha256: versionSha256(files), files };
}

async function stream(url: string, body: object): Promise<Stream> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/internal/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`compute node answered ${res.status}: ${await res.text()}`);
  const ttftMs = performance.now() - t0; // the node sends headers with the first token
  const lines = (await res.text())
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const tokens = lines.filter((l) => l.type === 'token');
  return {
    ttftMs,
    tokens: tokens.map((l) => l.token),
    margins: tokens.map((l) => (l.top?.length > 1 ? l.top[0].logprob - l.top[1].logprob : Infinity)),
  };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
