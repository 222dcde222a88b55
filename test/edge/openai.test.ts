import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJson } from '../helpers/fixtures.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';

const golden = (variant: 'base' | 'vlm-max' | 'lora-max', k: number) =>
  readJson(
    variant === 'base'
      ? 'stories260k/expected/prompts/greedy.json'
      : `stories260k/adapters/${variant}/expected/greedy.json`,
  ).prompts[k];

describe('OpenAI-compatible API through the Node entry (official openai client)', () => {
  let product: TestProduct;
  let openai: OpenAI;
  beforeAll(async () => {
    product = await startProduct();
    openai = product.openai();
  });
  afterAll(() => product?.close());

  it('chat, not streamed, on the base model: the golden continuation', async () => {
    const g = golden('base', 1);
    const r = await openai.chat.completions.create({
      model: 'stories260k',
      messages: [{ role: 'user', content: g.prompt_text }],
      temperature: 0,
      max_tokens: 120,
    });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0].message.content).toBe(g.greedy_text);
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage).toEqual({
      prompt_tokens: g.prompt_ids.length,
      completion_tokens: 120,
      total_tokens: g.prompt_ids.length + 120,
    });
  });

  const streamedVlmChat =
    'chat, streamed, through the VLM adapter (its task token from the default template), with a usage chunk';
  it(streamedVlmChat, async () => {
    const g = golden('vlm-max', 1);
    const { data: stream, response } = await openai.chat.completions
      .create({
        model: 'vlm-max',
        messages: [{ role: 'user', content: g.prompt_text }],
        temperature: 0,
        max_tokens: 120,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    expect(response.headers.get('x-versa-adapter')).toBe('vlm-max');
    expect(response.headers.get('x-versa-adapter-version')).toBe('1');
    let text = '';
    const ids = new Set<string>();
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      ids.add(chunk.id);
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(g.greedy_text);
    expect(ids.size).toBe(1);
    expect(finish).toBe('length');
    expect(usage?.completion_tokens).toBe(120);
  });

  it('completions, not streamed, pinned to the LoRA adapter version', async () => {
    const g = golden('lora-max', 2);
    const r = await openai.completions.create({
      model: 'lora-max@1',
      prompt: g.prompt_text,
      temperature: 0,
      max_tokens: 120,
    });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0].text).toBe(g.greedy_text);
  });

  it('completions, streamed, from token ids', async () => {
    const g = golden('base', 0);
    const stream = await openai.completions.create({
      model: 'stories260k',
      prompt: g.prompt_ids,
      temperature: 0,
      max_tokens: 120,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(g.greedy_text);
  });

  it('alias references resolve; per-token logprobs come in the chat shape', async () => {
    const r = await openai.chat.completions.create({
      model: 'lora-max@production',
      messages: [{ role: 'user', content: '' }],
      temperature: 0,
      max_tokens: 5,
      logprobs: true,
      top_logprobs: 2,
    });
    const content = r.choices[0].logprobs!.content!;
    expect(content).toHaveLength(5);
    for (const t of content) {
      expect(t.top_logprobs).toHaveLength(2);
      expect(t.logprob).toBeCloseTo(t.top_logprobs[0].logprob, 5);
    }
  });

  it('lists the bases, adapters and aliases the key may use', async () => {
    const ids = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    expect(ids).toEqual(expect.arrayContaining(['stories260k', 'vlm-max', 'lora-max', 'vlm-max@production']));
  });

  it("answers errors in OpenAI's shape with the right status", async () => {
    const chat = (body: object, key?: string) =>
      product.openai(key).chat.completions.create({
        model: 'stories260k',
        messages: [{ role: 'user', content: 'x' }],
        max_tokens: 4,
        ...body,
      } as never);
    await expect(chat({ model: 'nope' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(chat({ n: 9 })).rejects.toThrow(/n must be at most 8/);
    await expect(chat({ presence_penalty: 2.5 })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(chat({ max_tokens: 100_000 })).rejects.toThrow(/over this deployment's limit/);
    await expect(chat({ tools: [{ type: 'function', function: { name: 'f' } }] })).rejects.toThrow(
      /tools are not supported/,
    );
    await expect(chat({ messages: [{ role: 'user', content: 'x'.repeat(3000) }] })).rejects.toThrow(/context is 512/);
    await expect(chat({}, 'vsk_not-a-key')).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const readOnly = await product.registry.key('acme', ['read']);
    await expect(chat({}, readOnly)).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    const other = await product.registry.key('globex', ['generate']);
    await expect(chat({ model: 'vlm-max' }, other)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const res = await product.registry.fetch('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model": ',
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toMatch(/JSON/);
  });
});

describe('rate limits', () => {
  it('a key over its per-minute limit gets 429 with Retry-After', async () => {
    const product = await startProduct({ generation: { rateLimitPerMinute: 2 } });
    try {
      const ask = () => product.openai().completions.create({ model: 'stories260k', prompt: 'x', max_tokens: 1 });
      await ask();
      await ask();
      const error = await ask().catch((e) => e);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect(Number(error.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await product.close();
    }
  });
});
