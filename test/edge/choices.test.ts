import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProduct, type TestProduct } from '../helpers/product.ts';

/**
 * n choices, echo and list prompts through the edge with the official client, on a real node:
 * OpenAI's numbering (prompt * n + choice), usage counting each prompt once and every choice's
 * tokens, each choice's own finish_reason, streamed and whole; refusals name their parameter.
 */
describe('n, echo and list prompts through the edge (official openai client)', () => {
  let product: TestProduct;
  let openai: OpenAI;
  beforeAll(async () => {
    product = await startProduct();
    openai = product.openai();
  });
  afterAll(() => product?.close());

  const chat = (extra: object) =>
    openai.chat.completions.create({
      model: 'stories260k',
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 30,
      temperature: 1,
      seed: 7,
      ...extra,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);

  it('n = 3 with a seed gives 3 different choices, the same ones again, usage counting the prompt once', async () => {
    const [a, b, one] = await Promise.all([chat({ n: 3 }), chat({ n: 3 }), chat({})]);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const texts = a.choices.map((c) => c.message.content);
    expect(b.choices.map((c) => c.message.content)).toEqual(texts);
    expect(new Set(texts).size).toBe(3);
    expect(texts[0]).toBe(one.choices[0].message.content); // choice 0 keeps the request's seed
    expect(a.usage!.prompt_tokens).toBe(one.usage!.prompt_tokens);
    expect(a.usage!.completion_tokens).toBeGreaterThan(one.usage!.completion_tokens);
    for (const c of a.choices) expect(c.finish_reason).toBeOneOf(['stop', 'length']);
  });

  it('streamed, chunks carry their choice index 0..2, each choice its finish_reason, the same text', async () => {
    const whole = await chat({ n: 3, max_tokens: 200 });
    const stream = await openai.chat.completions.create({
      model: 'stories260k',
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 200,
      temperature: 1,
      seed: 7,
      n: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    const text = ['', '', ''];
    const finish: Array<string | null> = [null, null, null];
    let usage: OpenAI.CompletionUsage | undefined;
    const order: string[] = []; // 'finish' or 'content', chunk by chunk
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text[c.index] += c.delta.content ?? '';
        if (c.delta.content) order.push('content');
        if (c.finish_reason) {
          expect(finish[c.index]).toBeNull();
          finish[c.index] = c.finish_reason;
          order.push('finish');
        }
      }
      usage = chunk.usage ?? usage;
    }
    expect(text).toEqual(whole.choices.map((c) => c.message.content));
    expect(finish).toEqual(whole.choices.map((c) => c.finish_reason));
    expect(usage).toEqual(whole.usage);
    // A choice's finish chunk comes as it ends, while the longer choices still stream.
    expect(new Set(text.map((t) => t.length)).size).toBe(3);
    expect(order.indexOf('finish')).toBeLessThan(order.lastIndexOf('content'));
  });

  it('greedy n > 1 is allowed: identical choices', async () => {
    const r = await chat({ n: 2, temperature: 0 });
    expect(r.choices[1].message.content).toBe(r.choices[0].message.content);
  });

  const complete = (extra: object) =>
    openai.completions.create({
      model: 'stories260k',
      prompt: 'Once upon a time',
      max_tokens: 20,
      temperature: 0,
      ...extra,
    } as OpenAI.CompletionCreateParamsNonStreaming);

  it('echo puts the prompt before the completion, for a text or token ids', async () => {
    const plain = await complete({});
    const echoed = await complete({ echo: true });
    expect(echoed.choices[0].text).toBe(`Once upon a time${plain.choices[0].text}`);
    const post = async (path: string, body: object) =>
      (await fetch(`${product.registry.url}/v1/${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${product.registry.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'stories260k', ...body }),
      }).then((r) => r.json())) as { tokens: number[]; prompt: string };
    // A prompt of token ids echoes as /v1/detokenize decodes it.
    const { tokens } = await post('tokenize', { prompt: 'Once upon a time' });
    const { prompt } = await post('detokenize', { tokens });
    expect(prompt).toContain('Once upon a time');
    const ids = await complete({ prompt: tokens, echo: true });
    expect(ids.choices[0].text).toBe(prompt + plain.choices[0].text);
  });

  it('a list of prompts gives n choices per prompt, numbered prompt * n + choice, whole and streamed', async () => {
    const prompts = ['Once upon a time', 'The cat'];
    const singles = await Promise.all(prompts.map((prompt) => complete({ prompt })));
    const listed = await complete({ prompt: prompts, n: 2, echo: true });
    expect(listed.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(listed.choices.map((c) => c.text)).toEqual([0, 0, 1, 1].map((p) => prompts[p] + singles[p].choices[0].text));
    const promptTokens = singles.reduce((n, s) => n + s.usage!.prompt_tokens, 0);
    expect(listed.usage!.prompt_tokens).toBe(promptTokens);
    expect(listed.usage!.completion_tokens).toBe(2 * singles.reduce((n, s) => n + s.usage!.completion_tokens, 0));

    const stream = await openai.completions.create({
      model: 'stories260k',
      prompt: prompts,
      n: 2,
      max_tokens: 20,
      temperature: 0,
      stream: true,
    });
    const text = ['', '', '', ''];
    const finish: Array<string | null> = [null, null, null, null];
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text[c.index] += c.text;
        finish[c.index] = c.finish_reason ?? finish[c.index];
      }
    }
    expect(text).toEqual([0, 0, 1, 1].map((p) => singles[p].choices[0].text));
    expect(finish).toEqual([0, 0, 1, 1].map((p) => singles[p].choices[0].finish_reason));
  });

  it('refuses n over 8, best_of, too many prompts, echo with logprobs and too much work, by name', async () => {
    const refusal = async (extra: object) => {
      const e = await complete(extra).catch((x: unknown) => x);
      expect(e, JSON.stringify(extra)).toBeInstanceOf(OpenAI.BadRequestError);
      return e as InstanceType<typeof OpenAI.BadRequestError>;
    };
    const n9 = await refusal({ n: 9 });
    expect([n9.param, n9.message]).toEqual(['n', expect.stringMatching(/n must be at most 8/)]);
    expect(((await chat({ n: 9 }).catch((e: unknown) => e)) as { param?: string }).param).toBe('n');
    const bestOf = await refusal({ best_of: 2 });
    expect([bestOf.param, bestOf.message]).toEqual(['best_of', expect.stringMatching(/best_of is not supported/)]);
    const many = await refusal({ prompt: Array.from({ length: 17 }, () => 'a') });
    expect([many.param, many.message]).toEqual(['prompt', expect.stringMatching(/16 prompts at most/)]);
    expect((await refusal({ prompt: [] })).param).toBe('prompt');
    expect((await refusal({ echo: true, logprobs: 1 })).param).toBe('echo');
    // Every choice may run to max_tokens: the deployment's limit (4096) bounds their sum.
    const work = await refusal({ prompt: ['a', 'b'], n: 8, max_tokens: 300 });
    expect([work.param, work.message]).toEqual([
      'max_tokens',
      expect.stringMatching(/max_tokens 300 times 16 choices is over this deployment's limit of 4096/),
    ]);
  });
});
