import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';
import { COMPUTE_TOKEN, generate } from '../helpers/compute.ts';
import { ComputeEvent } from '../../src/protocol/compute.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';

/**
 * n choices on the compute protocol: token events name their choice, `done` lists each choice's
 * end with usage counting the prompt once, and each choice takes a row of the node's capacity.
 */
describe('compute node: n choices', () => {
  let node: ComputeNode;
  beforeAll(async () => {
    // Capacity 8 + 0 = 8 rows, all running at once.
    node = await startComputeNode({
      token: COMPUTE_TOKEN,
      model: fixture('stories260k/model.bin'),
      threads: 2,
      maxBatch: 8,
      maxQueue: 0,
    });
  });
  afterAll(() => node?.shutdown(1000));

  it('streams every choice, each event naming its choice, and ends with each choice in done', async () => {
    const r = await generate(node.url, { prompt: 'Once upon a time', max_tokens: 12, temperature: 1, seed: 2, n: 3 });
    expect(r.status).toBe(200);
    for (const line of r.lines) expect(ComputeEvent.safeParse(line).success, JSON.stringify(line)).toBe(true);
    const tokens = r.lines.filter((l) => l.type === 'token');
    const perChoice = [0, 1, 2].map((i) => tokens.filter((t) => (t.index ?? 0) === i).length);
    expect(r.end.type).toBe('done');
    expect(r.end.choices.map((c: { index: number }) => c.index)).toEqual([0, 1, 2]);
    expect(r.end.choices.map((c: { completion_tokens: number }) => c.completion_tokens)).toEqual(perChoice);
    expect(r.end.usage.completion_tokens).toBe(perChoice[0] + perChoice[1] + perChoice[2]);
    const one = await generate(node.url, { prompt: 'Once upon a time', max_tokens: 1 });
    expect(r.end.usage.prompt_tokens).toBe(one.end.usage.prompt_tokens);
    expect(one.end.choices).toBeUndefined(); // n = 1 keeps the protocol's old shape
    expect(one.lines.some((l) => 'index' in l)).toBe(false);
  });

  it('each choice takes a row of the capacity: n counts when the node is full', async () => {
    const controller = new AbortController();
    const hold = { prompt: '', max_tokens: 400, ignore_eos: true, n: 3 };
    const holding = [1, 2].map(() => generate(node.url, hold, controller.signal).catch(() => null));
    while (node.state.inflight < 6) await new Promise((r) => setTimeout(r, 5));
    try {
      const over = await generate(node.url, { prompt: '', max_tokens: 2, n: 3 });
      expect([over.status, over.error?.code]).toEqual([429, 'overloaded']);
      expect((await generate(node.url, { prompt: '', max_tokens: 2, n: 2 })).status).toBe(200);
    } finally {
      controller.abort();
      await Promise.all(holding);
    }
    while (node.state.inflight > 0) await new Promise((r) => setTimeout(r, 5));
  });

  it('refuses n over 8 as a 400 naming n', async () => {
    const r = await generate(node.url, { prompt: 'x', n: 9 });
    expect([r.status, r.error?.param]).toEqual([400, 'n']);
  });
});
