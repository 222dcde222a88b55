import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishFolder } from '../../registry/local.ts';
import { fixture, readJson } from '../helpers/fixtures.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';

/**
 * vLLM's /tokenize and /detokenize at the edge, answered by the compute node over the compute
 * protocol, and the chat template's switches (chat_template_kwargs, add_generation_prompt,
 * continue_final_message) on /tokenize and on chat completions.
 */
const TEMPLATE =
  '{% if enable_thinking %}<think>{% endif %}{% for m in messages %}{{ m.content }}|{% endfor %}' +
  '{% if add_generation_prompt %}ASSISTANT:{% endif %}';

describe('tokenize, detokenize and the chat template switches', () => {
  let product: TestProduct;
  beforeAll(async () => {
    product = await startProduct();
    await publishFolder(product.client, fixture('stories260k/adapters/lora-max'), 'templated', {
      base: 'stories260k@1',
      chat_template: TEMPLATE,
    });
  });
  afterAll(() => product?.close());

  const post = async (path: string, body: object, key = product.registry.adminKey) => {
    const res = await fetch(`${product.registry.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  const tokens = async (body: object) => {
    const r = await post('/v1/tokenize', body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.tokens as number[];
  };
  const user = (content: string) => ({ role: 'user', content });

  it("answers vLLM's shapes: a prompt's ids, their count and the context; detokenize gives the text back", async () => {
    const g = readJson('stories260k/expected/prompts/greedy.json').prompts[1];
    const r = await post('/v1/tokenize', { model: 'stories260k', prompt: g.prompt_text });
    expect(r).toEqual({
      status: 200,
      body: { tokens: g.prompt_ids, count: g.prompt_ids.length, max_model_len: 512 },
    });
    // As vLLM's (decode without skipping special tokens): the BOS id would come back as its own text.
    const back = await post('/v1/detokenize', { model: 'stories260k', tokens: g.prompt_ids.slice(1) });
    expect(back.status).toBe(200);
    expect(back.body.prompt.trim()).toBe(g.prompt_text.trim());
  });

  it("renders messages with the adapter's template, its task tokens counted", async () => {
    const g = readJson('stories260k/adapters/vlm-max/expected/greedy.json').prompts[1];
    expect(await tokens({ model: 'vlm-max', messages: [user(g.prompt_text)] })).toEqual(g.prompt_ids);
  });

  it('passes chat_template_kwargs and add_generation_prompt / continue_final_message to the template', async () => {
    const asText = (prompt: string) => tokens({ model: 'templated', prompt });
    const messages = [user('Once upon a time')];
    expect(await tokens({ model: 'templated', messages })).toEqual(await asText('Once upon a time|ASSISTANT:'));
    expect(await tokens({ model: 'templated', messages, chat_template_kwargs: { enable_thinking: true } })).toEqual(
      await asText('<think>Once upon a time|ASSISTANT:'),
    );
    expect(await tokens({ model: 'templated', messages, add_generation_prompt: false })).toEqual(
      await asText('Once upon a time|'),
    );
    const open = [...messages, { role: 'assistant', content: 'there was' }];
    expect(await tokens({ model: 'templated', messages: open, continue_final_message: true })).toEqual(
      await asText('Once upon a time|there was'),
    );
  });

  it('chat completions render with the same switches: the same text as the rendered prompt completed', async () => {
    const openai = product.openai();
    const chat = await openai.chat.completions.create({
      model: 'templated',
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 20,
      temperature: 0,
      chat_template_kwargs: { enable_thinking: true },
    } as never);
    const text = await openai.completions.create({
      model: 'templated',
      prompt: '<think>Once upon a time|ASSISTANT:',
      max_tokens: 20,
      temperature: 0,
    });
    expect(chat.choices[0].message.content).toBe(text.choices[0].text);
    expect(chat.usage).toEqual(text.usage);
  });

  it('previews the template: messages answer the rendered prompt with its ids and count', async () => {
    const messages = [user('Once upon a time')];
    const r = await post('/v1/tokenize', {
      model: 'templated',
      messages,
      chat_template_kwargs: { enable_thinking: true },
    });
    expect(r.status).toBe(200);
    const rendered = '<think>Once upon a time|ASSISTANT:';
    const ids = await tokens({ model: 'templated', prompt: rendered });
    expect(r.body).toEqual({ tokens: ids, count: ids.length, max_model_len: 512, prompt: rendered });
    // A prompt is not echoed back: only a rendered conversation is news to the caller.
    expect((await post('/v1/tokenize', { model: 'templated', prompt: rendered })).body.prompt).toBeUndefined();
  });

  it('refuses what it cannot do, in OpenAI error shape, naming the field', async () => {
    const refused = async (path: string, body: object, status: number, message: RegExp, key?: string) => {
      const r = await post(path, body, key);
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      expect(r.body.error.message).toMatch(message);
      return r.body.error;
    };
    const messages = [user('x')];
    await refused('/v1/tokenize', { model: 'stories260k', prompt: 'x' }, 401, /API key/, 'vsk_not-a-key');
    const readOnly = await product.registry.key('acme', ['read']);
    await refused('/v1/tokenize', { model: 'stories260k', prompt: 'x' }, 403, /scope/, readOnly);
    await refused('/v1/tokenize', { model: 'nope', prompt: 'x' }, 404, /nope/);
    const big = { padding: 'x'.repeat(5000) };
    await refused('/v1/tokenize', { model: 'templated', messages, chat_template_kwargs: big }, 400, /4096 bytes/);
    await refused(
      '/v1/tokenize',
      { model: 'templated', messages, chat_template_kwargs: { messages: [] } },
      400,
      /may not set/,
    );
    await refused(
      '/v1/tokenize',
      { model: 'templated', messages, add_generation_prompt: true, continue_final_message: true },
      400,
      /cannot both be true/,
    );
    const outside = await refused(
      '/v1/detokenize',
      { model: 'stories260k', tokens: [1, 99999] },
      400,
      /outside the vocabulary/,
    );
    expect(outside.param).toBe('tokens');
    await refused('/v1/detokenize', { model: 'stories260k', tokens: [1], extra: 1 }, 400, /extra|unrecognized/i);
    // The same switches on chat completions.
    const chat = (body: object) =>
      post('/v1/chat/completions', { model: 'templated', messages, max_tokens: 1, ...body });
    expect((await chat({ chat_template_kwargs: big })).status).toBe(400);
    expect((await chat({ add_generation_prompt: true, continue_final_message: true })).status).toBe(400);
  });
});
