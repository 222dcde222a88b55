import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, readJson } from '../helpers/fixtures.ts';
import { EngineClient, type Generation } from '../../src/engine/worker/client.ts';
import { AdapterFormatError } from '../../src/engine/adapters/format.ts';
import { loadAdapterFolder } from '../../src/engine/adapters/load.ts';
import { inspectModel } from '../../src/engine/loaders/load.ts';
import { Llama2cTokenizer } from '../../src/engine/tokenizer/llama2c.ts';
import { TaskTokenizer } from '../../src/engine/tokenizer/task-tokens.ts';
import { HfTokenizer } from '../../src/engine/tokenizer/hf.ts';

async function collect(g: Generation) {
  let text = '';
  const events = [];
  for await (const e of g) {
    text += e.text;
    events.push(e);
  }
  return { text, events, result: await g.result };
}

describe('generation on stories260k', () => {
  let engine: EngineClient;
  const golden = () => readJson('stories260k/expected/greedy_n200.tokens.json').tokens as number[];
  beforeAll(async () => {
    // A small prefill chunk, so that prompts are prefilled over several steps while others decode.
    engine = await EngineClient.start({
      model: fixture('stories260k/model.bin'),
      threads: 2,
      prefillChunk: 4,
      prefillChunkIdle: 4,
    });
    await engine.addAdapterFolder('vlm-max', fixture('stories260k/adapters/vlm-max'));
    await engine.addAdapterFolder('lora-max', fixture('stories260k/adapters/lora-max'));
  });
  afterAll(() => engine?.close());

  it('the same seed gives the same sample; another seed another one', async () => {
    const run = (seed: number) =>
      engine.generate({ prompt: 'Once upon a time', temperature: 1, topP: 0.95, seed, maxTokens: 40, ignoreEos: true })
        .result;
    const [a, b, c] = await Promise.all([run(7), run(7), run(8)]);
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).not.toEqual(c.tokens);
  });

  it('top_k 1 and a tiny top_p are greedy', async () => {
    const req = { prompt: '', maxTokens: 50, temperature: 1.3, seed: 3 };
    const [k1, p0] = await Promise.all([
      engine.generate({ ...req, topK: 1 }).result,
      engine.generate({ ...req, topP: 1e-6 }).result,
    ]);
    expect(k1.tokens).toEqual(golden().slice(0, 50));
    expect(p0.tokens).toEqual(golden().slice(0, 50));
  });

  it('stops at a stop string, which never reaches the output, even streamed', async () => {
    const { text, result } = await collect(engine.generate({ prompt: '', maxTokens: 200, stop: ['red ball'] }));
    expect(result.finishReason).toBe('stop');
    expect(text).toBe(
      'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ' +
        'One day, she saw a big, ',
    );
    expect(result.text).toBe(text);
  });

  it('stops at a stop token id, and at max_tokens with finish_reason length', async () => {
    const stopAt = golden()[5];
    const byId = await engine.generate({ prompt: '', maxTokens: 100, stopTokenIds: [stopAt] }).result;
    expect(byId.tokens).toEqual(golden().slice(0, 6));
    expect(byId.finishReason).toBe('stop');
    const byLength = await engine.generate({ prompt: '', maxTokens: 7 }).result;
    expect(byLength.tokens).toEqual(golden().slice(0, 7));
    expect(byLength.finishReason).toBe('length');
  });

  it('reports logprobs: the greedy token is the most likely alternative', async () => {
    const { events } = await collect(engine.generate({ prompt: '', maxTokens: 10, logprobs: 3 }));
    for (const e of events) {
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(e.top).toHaveLength(3);
      expect(e.top![0].token).toBe(e.token);
      expect(e.top![0].logprob).toBeCloseTo(e.logprob!, 6);
      expect(e.top![0].logprob).toBeGreaterThanOrEqual(e.top![1].logprob);
      expect(e.top!.reduce((s, t) => s + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1 + 1e-6);
    }
  });

  it('requests that join a running batch get exactly what they get alone', async () => {
    const vlm = readJson('stories260k/adapters/vlm-max/expected/greedy.json').prompts;
    const lora = readJson('stories260k/adapters/lora-max/expected/greedy.json').prompts;
    const first = engine.generate({ promptIds: golden().slice(0, 1), maxTokens: 120, ignoreEos: true });
    const seen: number[] = [];
    const later: Array<Promise<{ tokens: number[] }>> = [];
    for await (const e of first) {
      seen.push(e.token);
      if (seen.length === 10) {
        later.push(
          engine.generate({ promptIds: vlm[2].prompt_ids, adapter: 'vlm-max', maxTokens: 120, ignoreEos: true }).result,
        );
        later.push(
          engine.generate({ promptIds: lora[1].prompt_ids, adapter: 'lora-max', maxTokens: 120, ignoreEos: true })
            .result,
        );
      }
    }
    const [v, l] = await Promise.all(later);
    expect(v.tokens).toEqual(vlm[2].greedy_new_tokens);
    expect(l.tokens).toEqual(lora[1].greedy_new_tokens);
  });

  it('adapters of different size classes decode in runs of their own, each exactly as alone', async () => {
    const vlm = readJson('stories260k/adapters/vlm-max/expected/greedy.json').prompts[2];
    const lora = readJson('stories260k/adapters/lora-max/expected/greedy.json').prompts[1];
    // A base that costs nothing to run again: every size class (vlm-max 2^14, lora-max 2^15) runs apart.
    const split = await EngineClient.start({ model: fixture('stories260k/model.bin'), threads: 2, baseParams: 0 });
    try {
      await split.addAdapterFolder('vlm-max', fixture('stories260k/adapters/vlm-max'));
      await split.addAdapterFolder('lora-max', fixture('stories260k/adapters/lora-max'));
      const runs = new Set<number>();
      split.onStep = (stats) => runs.add(stats.decodeRuns);
      const [b, v, l] = split.generateMany([
        { promptIds: [1], maxTokens: 60, ignoreEos: true }, // BOS: the base's greedy golden
        { promptIds: vlm.prompt_ids, adapter: 'vlm-max', maxTokens: 120, ignoreEos: true },
        { promptIds: lora.prompt_ids, adapter: 'lora-max', maxTokens: 120, ignoreEos: true },
      ]);
      expect((await v.result).tokens).toEqual(vlm.greedy_new_tokens);
      expect((await l.result).tokens).toEqual(lora.greedy_new_tokens);
      expect((await b.result).tokens).toEqual(golden().slice(0, 60));
      expect(Math.max(...runs)).toBe(2); // [base + vlm-max], [lora-max]
    } finally {
      await split.close();
    }
  });

  it('a VLM adapter reads its task token from the prompt text', async () => {
    const p = readJson('stories260k/adapters/vlm-max/expected/greedy.json').prompts[1];
    const r = await engine.generate({ prompt: `<|max|>${p.prompt_text}`, adapter: 'vlm-max', maxTokens: 120 }).result;
    expect(r.tokens).toEqual(p.greedy_new_tokens);
    expect(r.text).toBe(p.greedy_text);
    expect(r.promptTokens).toBe(p.prompt_ids.length);
  });

  it('a request cancelled while its prompt is being tokenized ends cancelled, without a row', async () => {
    const g = engine.generate({ prompt: 'Once upon a time '.repeat(100), maxTokens: 50 });
    g.cancel(); // reaches the engine thread while the tokenizer thread works
    const r = await g.result;
    expect([r.finishReason, r.tokens, r.promptTokens > 100]).toEqual(['cancelled', [], true]);
    await expect(engine.generate({ promptIds: [1], maxTokens: 2 }).result).resolves.toMatchObject({
      completionTokens: 2,
    });
  });

  it('a cancelled request frees its row at once and others go on', async () => {
    const long = engine.generate({ prompt: '', maxTokens: 400, ignoreEos: true });
    const other = engine.generate({ prompt: 'Once upon a time', maxTokens: 30 });
    let n = 0;
    for await (const _ of long) if (++n === 5) long.cancel();
    const r = await long.result;
    expect(r.finishReason).toBe('cancelled');
    expect(r.tokens.length).toBeLessThan(20);
    expect((await other.result).tokens).toHaveLength(30);
  });
});

describe('engines built for some adapter kinds only', () => {
  it('a base-only graph decodes the same tokens and refuses adapters clearly', async () => {
    const engine = await EngineClient.start({ model: fixture('stories260k/hf'), threads: 2, adapterKinds: [] });
    try {
      expect((await engine.generate({ prompt: '', maxTokens: 50 }).result).tokens).toEqual(
        readJson('stories260k/expected/greedy_n200.tokens.json').tokens.slice(0, 50),
      );
      await expect(engine.addAdapterFolder('lora', fixture('stories260k/adapters/lora-max'))).rejects.toThrow(
        /serves no adapters, not lora/,
      );
    } finally {
      await engine.close();
    }
  });

  it('a LoRA-only graph serves LoRA and refuses VLM', async () => {
    const engine = await EngineClient.start({ model: fixture('stories260k/hf'), threads: 2, adapterKinds: ['lora'] });
    try {
      await engine.addAdapterFolder('lora', fixture('stories260k/adapters/lora-max'));
      const p = readJson('stories260k/adapters/lora-max/expected/greedy.json').prompts[0];
      expect(
        (await engine.generate({ promptIds: p.prompt_ids, adapter: 'lora', maxTokens: 120 }).result).tokens,
      ).toEqual(p.greedy_new_tokens);
      await expect(engine.addAdapterFolder('vlm', fixture('stories260k/adapters/vlm-max'))).rejects.toThrow(
        /serves lora adapters, not vlm/,
      );
    } finally {
      await engine.close();
    }
  });
});

describe('tokenizers and adapters', () => {
  it('the same text encodes to different ids under different adapters', () => {
    const base = Llama2cTokenizer.fromFile(fixture('stories260k/tokenizer.bin'));
    const withMax = new TaskTokenizer(base, 512, ['<|max|>']);
    const text = '<|max|>Once upon a time';
    expect(withMax.encode(text)).toEqual([1, 512, ...base.encodePlain('Once upon a time')]);
    expect(base.encode(text)).not.toContain(512);
    expect(base.encode(text).length).toBeGreaterThan(withMax.encode(text).length);
    expect(withMax.decode([512, 403])).toBe('<|max|> Once');
  });

  it('the Hugging Face tokenizer.json agrees with llama2.c on the fixture cases', () => {
    const hf = HfTokenizer.fromPath(fixture('stories260k/hf'));
    const { cases } = readJson('stories260k/expected/tokenizer_cases.json');
    for (const c of cases.slice(0, 200)) {
      expect(hf.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
      expect(hf.decode(c.ids)).toBe(c.decoded);
    }
  });

  it('refuses an adapter that does not fit the base, saying why', () => {
    const tiny = inspectModel(fixture('tiny-gpt2')).config;
    const stories = inspectModel(fixture('stories260k/hf')).config;
    expect(() => loadAdapterFolder(fixture('stories260k/adapters/vlm-max'), tiny)).toThrow(AdapterFormatError);
    expect(() => loadAdapterFolder(fixture('stories260k/adapters/vlm-max'), tiny)).toThrow(
      /adapter_block.project_down.weight/,
    );
    expect(() => loadAdapterFolder(fixture('tiny-gpt2/adapters/lora-c'), stories)).toThrow(
      /module "attn.c_attn" cannot be adapted/,
    );
    expect(() => loadAdapterFolder(fixture('stories260k/adapters/lora-max'), tiny)).toThrow(/cannot be adapted|layer/);
    expect(() => loadAdapterFolder(fixture('stories260k'), stories)).toThrow(/not an adapter/);
  });
});
