import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProduct, type TestProduct } from '../helpers/product.ts';

/**
 * The penalties, min_p, min_tokens and logit_bias through the edge with the official client, on
 * both routes; vLLM's extras (repetition_penalty, min_p, min_tokens) go as extra body fields.
 * What stays unsupported is refused by name.
 */
describe('sampling parameters through the edge (official openai client)', () => {
  let product: TestProduct;
  let openai: OpenAI;
  beforeAll(async () => {
    product = await startProduct();
    openai = product.openai();
  });
  afterAll(() => product?.close());

  const complete = async (extra: object) => {
    const r = await openai.completions.create({
      model: 'stories260k',
      prompt: 'Once upon a time',
      max_tokens: 40,
      temperature: 0,
      ...extra,
    } as OpenAI.CompletionCreateParamsNonStreaming);
    return r.choices[0];
  };

  it('each parameter changes the completion', async () => {
    const plain = await complete({});
    for (const extra of [
      { frequency_penalty: 1.5 },
      { presence_penalty: 2 },
      { repetition_penalty: 1.8 },
      { logit_bias: { '261': -100 } },
    ]) {
      expect((await complete(extra)).text, JSON.stringify(extra)).not.toBe(plain.text);
    }
    const sampled = { temperature: 1.5, seed: 4 };
    expect((await complete({ ...sampled, min_p: 0.3 })).text).not.toBe((await complete(sampled)).text);
  });

  it('chat takes them too, streamed, and min_tokens holds back the end of sequence', async () => {
    const ask = async (extra: object) => {
      const stream = await openai.chat.completions.create({
        model: 'stories260k',
        messages: [{ role: 'user', content: 'Once upon a time' }],
        max_tokens: 300,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
        ...extra,
      } as OpenAI.ChatCompletionCreateParamsStreaming);
      let finish: string | null = null;
      let tokens = 0;
      for await (const chunk of stream) {
        finish = chunk.choices[0]?.finish_reason ?? finish;
        tokens = chunk.usage?.completion_tokens ?? tokens;
      }
      return { finish, tokens };
    };
    const free = await ask({ frequency_penalty: 0.2 });
    expect(free.finish).toBe('stop');
    const held = await ask({ frequency_penalty: 0.2, min_tokens: free.tokens + 10 });
    expect(held.tokens).toBeGreaterThanOrEqual(free.tokens + 10);
  });

  it('refuses bad values and what stays unsupported, naming the parameter', async () => {
    const refusal = async (extra: object) => {
      const e = await complete(extra).catch((x: unknown) => x);
      expect(e, JSON.stringify(extra)).toBeInstanceOf(OpenAI.BadRequestError);
      return e as InstanceType<typeof OpenAI.BadRequestError>;
    };
    expect((await refusal({ frequency_penalty: 2.5 })).param).toBe('frequency_penalty');
    expect((await refusal({ min_p: 2 })).param).toBe('min_p');
    expect((await refusal({ repetition_penalty: 0 })).param).toBe('repetition_penalty');
    const many = Object.fromEntries(Array.from({ length: 301 }, (_, i) => [String(i), 1]));
    expect((await refusal({ logit_bias: many })).message).toMatch(/300 entries at most/);
    expect((await refusal({ logit_bias: { '1': 101 } })).param).toMatch(/^logit_bias/);
    // Checked on the node, against the model's vocabulary and max_tokens.
    const outside = await refusal({ logit_bias: { '999999': 1 } });
    expect([outside.param, outside.message]).toEqual(['logit_bias', expect.stringMatching(/outside the vocabulary/)]);
    expect((await refusal({ min_tokens: 50 })).message).toMatch(/min_tokens 50 is over max_tokens 40/);
    expect((await refusal({ best_of: 2 })).message).toMatch(/best_of/);
    expect((await refusal({ n: 9 })).message).toMatch(/n must be at most 8/);
    expect((await refusal({ suffix: 'x' })).message).toMatch(/suffix is not supported/);
  });
});
