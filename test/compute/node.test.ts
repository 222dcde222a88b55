import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, readJson } from '../helpers/fixtures.ts';
import { AUTH, blobFolder, COMPUTE_TOKEN, generate, metric } from '../helpers/compute.ts';
import { versionSha256 } from '../../src/compute/adapter-cache.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';

describe('compute node', () => {
  let node: ComputeNode;
  let blobs: Awaited<ReturnType<typeof blobFolder>>;
  beforeAll(async () => {
    blobs = await blobFolder({
      'vlm-max@1': fixture('stories260k/adapters/vlm-max'),
      'lora-max@1': fixture('stories260k/adapters/lora-max'),
    });
    node = await startComputeNode({
      token: COMPUTE_TOKEN,
      model: fixture('stories260k/model.bin'),
      threads: 2,
      maxBatch: 8,
      maxQueue: 16,
      blobs: blobs.store,
    });
  });
  afterAll(() => node?.shutdown(1000));

  it('is alive and ready, and serves Prometheus metrics', async () => {
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${node.url}/readyz`)).status).toBe(200);
    const page = await (await fetch(`${node.url}/metrics`, { headers: AUTH })).text();
    for (const name of [
      'versa_queue_depth',
      'versa_batch_size',
      'versa_time_to_first_token_seconds',
      'versa_inter_token_latency_seconds',
      'versa_adapter_cache_bytes',
    ]) {
      expect(page).toContain(name);
    }
  });

  it('concurrent streams for base, VLM and LoRA each produce their single-stream output', async () => {
    const variants = [
      { adapter: null, spec: readJson('stories260k/expected/prompts/greedy.json') },
      { adapter: blobs.refs['vlm-max@1'], spec: readJson('stories260k/adapters/vlm-max/expected/greedy.json') },
      { adapter: blobs.refs['lora-max@1'], spec: readJson('stories260k/adapters/lora-max/expected/greedy.json') },
    ];
    const jobs = variants.flatMap(({ adapter, spec }) =>
      spec.prompts.map((p: any) => ({
        body: { adapter, prompt_ids: p.prompt_ids, max_tokens: 120, ignore_eos: true },
        expected: p.greedy_new_tokens,
      })),
    );
    const results = await Promise.all(jobs.map((j) => generate(node.url, j.body)));
    results.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.tokens, `job ${i}`).toEqual(jobs[i].expected);
      expect(r.end).toMatchObject({ type: 'done', finish_reason: 'length', usage: { completion_tokens: 120 } });
    });
    expect(await metric(node.url, 'versa_adapter_cache_loads_total', 'adapter="vlm-max@1"')).toBe(1);
    // The engine thread's step figures reach the node: decode steps of several rows at once.
    const steps = await metric(node.url, 'versa_batch_size_count');
    expect(steps).toBeGreaterThanOrEqual(120);
    expect((await metric(node.url, 'versa_batch_size_sum')) / steps).toBeGreaterThan(1);
  });

  it('a client that disconnects frees its row', async () => {
    const controller = new AbortController();
    const res = await fetch(`${node.url}/v1/internal/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...AUTH },
      signal: controller.signal,
      body: JSON.stringify({ prompt: '', max_tokens: 500, ignore_eos: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    expect(node.state.inflight).toBe(1);
    controller.abort();
    const until = Date.now() + 2000;
    while (node.state.inflight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(node.state.inflight).toBe(0);
    expect(await metric(node.url, 'versa_requests_total', 'outcome="cancelled"')).toBeGreaterThanOrEqual(1);
  });

  it('refuses an adapter whose bytes do not match its sha256, and does not cache it', async () => {
    const good = blobs.refs['lora-max@1'];
    const weights = good.files.find((f) => f.name.endsWith('.safetensors'))!;
    const claimed = 'f'.repeat(64); // a blob stored under a hash its bytes do not have
    mkdirSync(dirname(blobs.store.pathOf(claimed)), { recursive: true });
    copyFileSync(blobs.store.pathOf(weights.sha256), blobs.store.pathOf(claimed));
    const files = good.files.map((f) => (f === weights ? { ...f, sha256: claimed } : f));
    const bad = { id: 'tampered@1', sha256: versionSha256(files), files };
    const before = node.state.cache.bytes;
    for (let i = 0; i < 2; i++) {
      const r = await generate(node.url, { adapter: bad, prompt: '', max_tokens: 2 });
      expect(r.status).toBe(422);
      expect(r.error.message).toMatch(`has sha256 ${weights.sha256}, expected ${claimed}`);
    }
    expect(node.state.cache.bytes).toBe(before);
    expect(await metric(node.url, 'versa_adapter_cache_loads_total', 'adapter="tampered@1"')).toBe(0);
  });

  it('ends a request that runs past its deadline with an error line, and frees its row', async () => {
    const r = await generate(node.url, { prompt: '', max_tokens: 500, ignore_eos: true, deadline_ms: 150 });
    expect(r.status).toBe(200);
    expect(r.tokens!.length).toBeLessThan(500);
    expect(r.end).toMatchObject({ type: 'error', error: { code: 'deadline_exceeded' } });
    expect(node.state.inflight).toBe(0);
  });

  it('answers bad input with a JSON 400', async () => {
    const post = (body: string, type = 'application/json') =>
      fetch(`${node.url}/v1/internal/generate`, { method: 'POST', headers: { 'content-type': type, ...AUTH }, body });
    for (const [body, message] of [
      ['{nope', /not valid JSON/],
      ['{"prompt": "x", "max_tokens": -1}', /max_tokens/],
      ['{"prompt_ids": [1, 99999]}', /outside the vocabulary/],
      [JSON.stringify({ prompt_ids: Array(600).fill(3) }), /context/],
    ] as const) {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect((await res.json()).error.message).toMatch(message);
    }
    expect((await post('x', 'text/plain')).status).toBe(400);
  });

  it('tokenizes and detokenizes under the adapter named (its task tokens count), for its own base only', async () => {
    const call = async (path: string, body: object) => {
      const res = await fetch(`${node.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...AUTH },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    const g = readJson('stories260k/adapters/vlm-max/expected/greedy.json').prompts[1];
    const adapter = blobs.refs['vlm-max@1'];
    const prompt = `<|max|>${g.prompt_text}`;
    expect(await call('/v1/internal/tokenize', { adapter, prompt })).toEqual({
      status: 200,
      body: { tokens: g.prompt_ids, count: g.prompt_ids.length, max_model_len: 512 },
    });
    const plain = await call('/v1/internal/tokenize', { prompt });
    expect(plain.body.tokens).not.toContain(512); // without the adapter, its task token is plain text
    expect(await call('/v1/internal/detokenize', { adapter, tokens: [512] })).toEqual({
      status: 200,
      body: { prompt: '<|max|>' },
    });
    expect((await call('/v1/internal/detokenize', { tokens: [512] })).status).toBe(400); // outside the base vocabulary
    const other = await call('/v1/internal/tokenize', { base: { sha256: 'f'.repeat(64) }, prompt: 'x' });
    expect([other.status, other.body.error.code]).toEqual([409, 'base_mismatch']);
  });
});

describe('compute node under load', () => {
  it('a burst for one cold adapter loads it once; overload gets 429 with Retry-After', async () => {
    const blobs = await blobFolder({ 'vlm-max@1': fixture('stories260k/adapters/vlm-max') });
    const node = await startComputeNode({
      token: COMPUTE_TOKEN,
      model: fixture('stories260k/model.bin'),
      threads: 2,
      maxBatch: 4,
      maxQueue: 4,
      blobs: blobs.store,
    });
    try {
      const burst = await Promise.all(
        Array.from({ length: 8 }, () =>
          generate(node.url, { adapter: blobs.refs['vlm-max@1'], prompt: '<|max|>', max_tokens: 4 }),
        ),
      );
      expect(burst.every((r) => r.status === 200)).toBe(true);
      expect(await metric(node.url, 'versa_adapter_cache_loads_total', 'adapter="vlm-max@1"')).toBe(1);
      const lookups =
        (await metric(node.url, 'versa_adapter_cache_misses_total', 'adapter="vlm-max@1"')) +
        (await metric(node.url, 'versa_adapter_cache_hits_total', 'adapter="vlm-max@1"'));
      expect(lookups).toBe(8);

      // Fill every row and queue slot (4 + 4), then knock: everyone beyond gets 429.
      const controller = new AbortController();
      const holding = Array.from({ length: 8 }, () =>
        generate(node.url, { prompt: '', max_tokens: 400, ignore_eos: true }, controller.signal).catch(() => null),
      );
      while (node.state.inflight < 8) await new Promise((r) => setTimeout(r, 5));
      const knocks = await Promise.all(
        Array.from({ length: 3 }, () => generate(node.url, { prompt: '', max_tokens: 4 })),
      );
      for (const r of knocks) {
        expect(r.status).toBe(429);
        expect(r.headers.get('retry-after')).toBe('1');
        expect(r.error.code).toBe('overloaded');
      }
      controller.abort();
      await Promise.all(holding);
      while (node.state.inflight > 0) await new Promise((r) => setTimeout(r, 5));
      expect((await generate(node.url, { prompt: '', max_tokens: 4 })).status).toBe(200);
    } finally {
      await node.shutdown(1000);
    }
  });

  it('a stream cut by the drain deadline ends with an error line, never a "done"', async () => {
    const node = await startComputeNode({ token: COMPUTE_TOKEN, model: fixture('stories260k/model.bin'), threads: 2 });
    const running = generate(node.url, { prompt: '', max_tokens: 2000, ignore_eos: true });
    while (node.state.inflight === 0) await new Promise((r) => setTimeout(r, 2)); // admitted, running
    await node.shutdown(1);
    const r = await running;
    expect(r.status).toBe(200);
    expect(r.end).toMatchObject({ type: 'error', error: { code: 'generation_cancelled' } });
    expect(r.end.error.message).toMatch(/shut down before the generation finished/);
  });

  it('drains on SIGTERM: the running stream finishes, then the process exits 0', async () => {
    const child = spawn(
      process.execPath,
      [
        resolve(import.meta.dirname, '../../bin/versa.js'),
        'compute',
        '--model',
        fixture('stories260k/model.bin'),
        '--port',
        '0',
        '--threads',
        '2',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN } },
    );
    const url = await new Promise<string>((done, fail) => {
      child.stdout.on('data', (d) => done(String(d).trim()));
      child.on('exit', (code) => fail(new Error(`exited ${code}`)));
    });
    const res = await fetch(`${url}/v1/internal/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...AUTH },
      body: JSON.stringify({ prompt: '', max_tokens: 200, ignore_eos: true }),
    });
    const exited = new Promise<number | null>((done) => child.on('exit', done));
    child.kill('SIGTERM');
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.type === 'token')).toHaveLength(200);
    expect(lines.at(-1)).toMatchObject({ type: 'done', finish_reason: 'length' });
    expect(await exited).toBe(0);
  });
});
