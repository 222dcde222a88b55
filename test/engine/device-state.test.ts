import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fixture, maxAbsDiff, readJson } from '../helpers/fixtures.ts';
import { adapterFor, greedyBatch, runnerFor } from '../helpers/engine.ts';
import type { ModelRunner } from '../../src/engine/runtime/runner.ts';
import { openRuntime } from '../../src/engine/engine.ts';
import { perplexity } from '../../src/engine/eval/perplexity.ts';
import { createSession, resolveProvider } from '../../src/engine/runtime/session.ts';
import { GraphBuilder } from '../../src/engine/graph/onnx.ts';
import type { ExecutionProvider } from '../../src/engine/runtime/providers.ts';

/**
 * The 'device' graphs (graph/io.ts): the KV cache and the adapter banks kept in onnxruntime's
 * tensors across steps, which on a GPU provider is GPU memory. On the CPU provider the same graph
 * and code run with host memory: the CPU is the oracle for the graph, and the GPU runs below check
 * the same goldens where WebGPU finds an adapter (any Vulkan device: a GPU, or Mesa's software
 * lavapipe, which CI installs).
 */
const STORIES = () => fixture('stories260k/model.bin');

/** Both adapter kinds' prompt goldens and the base model's, decoded together as rows of different lengths. */
function mixedRows(runner: ModelRunner) {
  const vlm = adapterFor(runner, fixture('stories260k/adapters/vlm-max'));
  const lora = adapterFor(runner, fixture('stories260k/adapters/lora-max'));
  return [
    { spec: readJson('stories260k/expected/prompts/greedy.json'), adapter: undefined },
    { spec: readJson('stories260k/adapters/vlm-max/expected/greedy.json'), adapter: vlm },
    { spec: readJson('stories260k/adapters/lora-max/expected/greedy.json'), adapter: lora },
  ].flatMap(({ spec, adapter }) =>
    spec.prompts.map((p: any) => ({ prompt: p.prompt_ids as number[], adapter, expected: p.greedy_new_tokens })),
  );
}

/**
 * Bytes of the feeds a run takes from host memory (what a GPU provider uploads), but for the cache:
 * the test checks that it is the previous run's output.
 */
function hostBytes(feeds: Record<string, ort.Tensor>): number {
  return Object.entries(feeds)
    .filter(([name, t]) => !/^past_(key|value)\./.test(name) && t.location === 'cpu')
    .reduce((n, [, t]) => n + (t.data as ArrayBufferView).byteLength, 0);
}

/**
 * The checks every provider must pass with the cache and banks on its device: the greedy golden,
 * mixed adapter rows each as if alone, and a decode step whose uploads do not grow with the context.
 */
function deviceStateChecks(ep: ExecutionProvider, steps: { golden: number; mixed: number }) {
  let runner: ModelRunner;
  beforeAll(async () => void (runner = await runnerFor(STORIES(), undefined, { ep, kv: 'device' })));
  afterAll(() => runner?.release());

  it(`reproduces llama2.c's greedy golden (${steps.golden} tokens)`, async () => {
    expect(runner.kv).toBe('device');
    const { tokens } = await greedyBatch(runner, [{ prompt: [1] }], steps.golden);
    const golden = readJson('stories260k/expected/greedy_n200.tokens.json').tokens;
    expect(tokens[0]).toEqual(golden.slice(0, steps.golden));
  });

  it('decodes base, VLM and LoRA rows of different lengths together, each as its golden', async () => {
    const rows = mixedRows(runner);
    const { tokens } = await greedyBatch(runner, rows, steps.mixed);
    rows.forEach((r, i) => expect(tokens[i], `row ${i}`).toEqual(r.expected.slice(0, steps.mixed)));
  });

  it('a decode step feeds back the cache it was given and uploads nothing that grows with the context', async () => {
    const session = (runner as unknown as { session: ort.InferenceSession }).session;
    const run = vi.spyOn(session, 'run');
    try {
      const prompt = Array.from({ length: 150 }, (_, i) => 1 + (i % 300));
      await runner.run([{ row: 0, tokens: prompt.slice(0, 3), position: 0 }]);
      await runner.run([{ row: 0, tokens: [5], position: 3 }]);
      await runner.run([{ row: 0, tokens: prompt.slice(3), position: 3 }]);
      await runner.run([{ row: 0, tokens: [5], position: 150 }]);
      await runner.run([{ row: 0, tokens: [6], position: 151 }]);
      const feeds = run.mock.calls.map((c) => c[0] as Record<string, ort.Tensor>);
      const outputs = await Promise.all(run.mock.results.map((r) => r.value as ort.InferenceSession.ReturnType));
      const [short, long] = [feeds[1], feeds[3]];
      expect(long['past_key.0'].dims[2]).toBeGreaterThan(short['past_key.0'].dims[2]); // the cache grew
      expect(hostBytes(long)).toBe(hostBytes(short));
      // Each run's cache input is the tensor the run before returned (kept where it was, never rebuilt).
      for (let l = 0; l < runner.config.numLayers; l++) {
        expect(feeds[4][`past_key.${l}`]).toBe(outputs[3][`present_key.${l}`]);
        expect(feeds[4][`past_value.${l}`]).toBe(outputs[3][`present_value.${l}`]);
      }
      if (ep !== 'cpu') {
        expect(outputs[4]['present_key.0'].location).toBe('gpu-buffer');
        expect(outputs[4].logits.location).toBe('cpu');
        // What the runner reports sending (bench engine's host_bytes_per_step): ids and indices only.
        const before = runner.hostBytesIn;
        await runner.run([{ row: 0, tokens: [7], position: 152 }]);
        expect(runner.hostBytesIn - before).toBe(hostBytes(long));
        expect(hostBytes(long)).toBeLessThan(1024);
      }
    } finally {
      run.mockRestore();
      runner.cache.clear();
    }
  });
}

/** Every Llama-family architecture's greedy goldens (test/fixtures/archs), base and LoRA prompts in one batch. */
function architectureGoldens(ep: ExecutionProvider) {
  it.each(['llama3', 'qwen2', 'qwen3', 'mistral', 'phi3', 'gemma', 'gemma2'])('%s: greedy goldens', async (arch) => {
    const dir = fixture('archs', arch);
    const golden = readJson('archs', arch, 'expected/greedy.json');
    const runner = await runnerFor(dir, undefined, { ep, kv: 'device' });
    try {
      const lora = adapterFor(runner, join(dir, 'adapters/lora'));
      const rows = [
        ...golden.variants.base.prompts.map((p: any) => ({ prompt: p.prompt_ids, expected: p.greedy_new_tokens })),
        ...golden.variants.lora.prompts.map((p: any) => ({
          prompt: p.prompt_ids,
          adapter: lora,
          expected: p.greedy_new_tokens,
        })),
      ];
      const { tokens } = await greedyBatch(runner, rows, golden.steps);
      rows.forEach((r, i) => expect(tokens[i], `row ${i}`).toEqual(r.expected));
    } finally {
      await runner.release();
    }
  });
}

describe('the cache and banks on the device: the CPU provider (oracle)', () => {
  deviceStateChecks('cpu', { golden: 200, mixed: 120 });
  architectureGoldens('cpu');

  it("frees a bank shelf's device copy once the shelf leaves the bank, and uploads a shelf once a change", async () => {
    const runner = await runnerFor(STORIES(), undefined, { kv: 'device' });
    const session = (runner as unknown as { session: ort.InferenceSession }).session;
    const run = vi.spyOn(session, 'run');
    try {
      const vlm = adapterFor(runner, fixture('stories260k/adapters/vlm-max'));
      runner.bank.acquire(vlm, 1); // a shelf of its own, dropped when its last adapter leaves
      await runner.run([{ row: 0, tokens: [1, 2], position: 0, adapter: vlm.id }]);
      await runner.run([{ row: 0, tokens: [3], position: 2, adapter: vlm.id }]);
      const [first, second] = run.mock.calls.map((c) => c[0] as Record<string, ort.Tensor>);
      expect(second['vlm.0.down']).toBe(first['vlm.0.down']); // the same copy, not sent again
      expect(first['vlm.0.down'].location).toBe('cpu'); // the CPU provider's "device"
      runner.bank.release(vlm.id);
      await runner.run([{ row: 0, tokens: [4], position: 3 }]);
      expect(first['vlm.0.down'].location).toBe('none'); // disposed
    } finally {
      run.mockRestore();
      await runner.release();
    }
  });

  it('row moves, swaps, copies and shrinks give the same next logits as the host cache', async () => {
    const [host, device] = await Promise.all([
      runnerFor(STORIES(), undefined, { kv: 'host' }),
      runnerFor(STORIES(), undefined, { kv: 'device' }),
    ]);
    try {
      const prompts = [
        [1, 60, 70, 80, 90, 100],
        [1, 7, 8],
        [1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309],
      ];
      const steps = async (runner: ModelRunner) => {
        const out: Float32Array[] = [];
        const keep = (logits: Float32Array[]) => out.push(...logits.map((l) => l.slice()));
        // Three rows of different lengths, then a long row's growth past the first capacity.
        keep(await runner.run(prompts.map((tokens, row) => ({ row, tokens, position: 0 }))));
        keep(await runner.run([{ row: 2, tokens: Array.from({ length: 70 }, (_, i) => 2 + i), position: 11 }]));
        // A long row beside one at the end of the capacity, whose padding has no position left in its row.
        const long = Array.from({ length: 50 }, (_, i) => 100 + i);
        keep(
          await runner.run([
            { row: 1, tokens: long, position: 3 },
            { row: 2, tokens: [9], position: 81 },
          ]),
        );
        // As the scheduler plans them: rows swap, a row compacts down into a freed one, a fork copies its row.
        runner.cache.swapRows(0, 2); // row 0: the 82 positions; row 2: the 6
        runner.cache.moveRow(2, 1); // row 1: the 6
        runner.cache.copyRow(1, 4); // row 4, a new row: the 6 too
        keep(await runner.run([{ row: 0, tokens: [9], position: 82 }]));
        keep(await runner.run([{ row: 1, tokens: [9], position: 6 }]));
        keep(await runner.run([{ row: 4, tokens: [10], position: 6 }]));
        runner.cache.shrink(8); // row 0 has left
        keep(await runner.run([{ row: 1, tokens: [11], position: 7 }]));
        keep(await runner.run([{ row: 4, tokens: [12], position: 7 }]));
        return out;
      };
      const [expected, actual] = [await steps(host), await steps(device)];
      expect(actual.length).toBe(expected.length);
      actual.forEach((l, i) => expect(maxAbsDiff(l, expected[i]), `logits ${i}`).toBeLessThan(1e-5));
    } finally {
      await Promise.all([host.release(), device.release()]);
    }
  });
});

/** Whether WebGPU finds an adapter here, and a one-line reason when not. */
async function webgpu(): Promise<{ ok: boolean; why?: string }> {
  try {
    if ((await resolveProvider('webgpu')) !== 'webgpu') return { ok: false, why: 'not resolved' };
    const g = new GraphBuilder();
    g.input('x', 'float32', [1]);
    g.output(g.op('Relu', ['x']), 'y', 'float32', [1]);
    await (await createSession(g.encode(), 'webgpu', { threads: 1 })).session.release();
    return { ok: true };
  } catch (e) {
    return { ok: false, why: (e as Error).message.split('\n')[0] };
  }
}

const gpu = await webgpu();
if (!gpu.ok) console.warn(`SKIPPED: the WebGPU checks of device-state.test.ts (no Vulkan device: ${gpu.why})`);

describe.skipIf(!gpu.ok)('the cache and banks on the device: WebGPU', () => {
  // Fewer steps than on the CPU: a software Vulkan device (lavapipe, in CI) takes about 70 ms a step.
  deviceStateChecks('webgpu', { golden: 200, mixed: 40 });
  architectureGoldens('webgpu');

  it("serves float16 by default, within 0.5 % of float32's perplexity (and float32 as the reference's)", async () => {
    const text = readFileSync(fixture('perplexity/story.txt'), 'utf8');
    const reference = readJson('perplexity/expected.json').full.perplexity;
    const scored = async (dtype?: 'float32') => {
      const { runner, tokenizer } = await openRuntime({ model: STORIES(), ep: 'webgpu', dtype, adapterKinds: [] });
      try {
        return { float: runner.format.float, ...(await perplexity(runner, tokenizer!.encode(text))) };
      } finally {
        await runner.release();
      }
    };
    const [half, full] = [await scored(), await scored('float32')];
    expect([half.float, full.float]).toEqual(['float16', 'float32']);
    expect(Math.abs(full.perplexity / reference - 1)).toBeLessThan(1e-3);
    expect(Math.abs(half.perplexity / full.perplexity - 1)).toBeLessThan(5e-3);
  });
});
