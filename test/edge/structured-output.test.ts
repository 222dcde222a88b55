import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateObject, streamObject } from 'ai';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProduct, type TestProduct } from '../helpers/product.ts';
import { SCHEMAS, jsonSchemaFormat, validatorOf } from '../engine/structured-suite.ts';

/**
 * response_format through the edge with the official client: json_schema and json_object on both
 * routes, streamed and not; the SDK's zod helper (`chat.completions.parse` + zodResponseFormat)
 * and the Vercel AI SDK's generateObject/streamObject work unchanged; what is not supported is a
 * 400 naming the keyword.
 */
describe('structured output through the edge (official openai client, Vercel AI SDK)', () => {
  let product: TestProduct;
  let openai: OpenAI;
  beforeAll(async () => {
    product = await startProduct();
    openai = product.openai();
  });
  afterAll(() => product?.close());

  const schema = SCHEMAS['nested objects'];
  const format = jsonSchemaFormat('user', schema) as OpenAI.ResponseFormatJSONSchema;
  const valid = (text: string) => validatorOf(schema).safeParse(JSON.parse(text)).success;

  it('chat: json_schema, not streamed and streamed, gives JSON that validates', async () => {
    const ask = { model: 'stories260k', messages: [{ role: 'user' as const, content: 'A user, as JSON' }] };
    const r = await openai.chat.completions.create({
      ...ask,
      max_tokens: 200,
      temperature: 0,
      response_format: format,
    });
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(valid(r.choices[0].message.content!)).toBe(true);
    const stream = await openai.chat.completions.create({
      ...ask,
      max_tokens: 200,
      temperature: 0.9,
      seed: 5,
      stream: true,
      response_format: format,
    });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('stop');
    expect(valid(text)).toBe(true);
  });

  it('completions: json_schema and json_object, streamed and not', async () => {
    const create = (extra: object) =>
      openai.completions.create({
        model: 'stories260k',
        prompt: 'JSON:',
        max_tokens: 200,
        temperature: 0,
        ...extra,
      } as OpenAI.CompletionCreateParamsNonStreaming);
    const r = await create({ response_format: format });
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(valid(r.choices[0].text)).toBe(true);
    const object = await create({ response_format: { type: 'json_object' }, temperature: 0.5, seed: 2 });
    if (object.choices[0].finish_reason === 'stop') expect(JSON.parse(object.choices[0].text)).toBeTypeOf('object');
    else expect(object.choices[0].finish_reason).toBe('length');
    const stream = await openai.completions.create({
      model: 'stories260k',
      prompt: 'JSON:',
      max_tokens: 200,
      stream: true,
      response_format: format,
    } as unknown as OpenAI.CompletionCreateParamsStreaming);
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(valid(text)).toBe(true);
  });

  it("the SDK's zod helper: chat.completions.parse with zodResponseFormat, unchanged", async () => {
    const Pet = z.object({
      name: z.string().max(8),
      age: z.number().int(),
      kind: z.enum(['cat', 'dog']),
      vaccinated: z.boolean(),
      toys: z.array(z.string().max(6)).max(2),
      owner: z.string().max(10).nullable(),
      tag: z.string().regex(/^[A-Z]{2}-\d{3}$/),
    });
    const r = await openai.chat.completions.parse({
      model: 'stories260k',
      messages: [{ role: 'user', content: 'Describe a pet.' }],
      max_tokens: 200,
      temperature: 0.7,
      seed: 3,
      response_format: zodResponseFormat(Pet, 'pet'),
    });
    const pet = r.choices[0].message.parsed;
    expect(pet).not.toBeNull();
    expect(Pet.parse(pet)).toEqual(pet);
  });

  it("the Vercel AI SDK's generateObject and streamObject (OpenAI-compatible provider), unchanged", async () => {
    const versa = createOpenAICompatible({
      name: 'versa',
      baseURL: `${product.registry.url}/v1`,
      apiKey: product.registry.adminKey,
      supportsStructuredOutputs: true, // json_schema, not only json_object
    });
    const Recipe = z.object({
      title: z.string().max(12),
      minutes: z.number().int(),
      steps: z.array(z.string().max(8)).min(1).max(3),
      vegan: z.boolean(),
    });
    const ask = { model: versa.chatModel('stories260k'), schema: Recipe, schemaName: 'recipe', maxRetries: 0 };
    const whole = await generateObject({ ...ask, prompt: 'A recipe.', temperature: 0, maxOutputTokens: 200 });
    expect(whole.finishReason).toBe('stop');
    expect(Recipe.parse(whole.object)).toEqual(whole.object);
    const streamed = streamObject({
      ...ask,
      prompt: 'A quick recipe.',
      temperature: 0.8,
      seed: 4,
      maxOutputTokens: 200,
    });
    let partials = 0;
    for await (const partial of streamed.partialObjectStream) if (partial) partials++; // read as it arrives
    expect(partials).toBeGreaterThan(1);
    const object = await streamed.object; // rejects if the streamed text does not parse and validate
    expect(Recipe.parse(object)).toEqual(object);
  });

  it('refuses an unsupported keyword with a 400 naming it (param response_format)', async () => {
    const e = await openai.chat.completions
      .create({
        model: 'stories260k',
        messages: [{ role: 'user', content: 'x' }],
        response_format: jsonSchemaFormat('s', { type: 'string', format: 'email' }) as OpenAI.ResponseFormatJSONSchema,
      })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    const error = e as InstanceType<typeof OpenAI.BadRequestError>;
    expect(error.param).toBe('response_format');
    expect(error.message).toMatch(/unsupported JSON Schema keyword "format"/);
    const type = await openai.completions
      .create({ model: 'stories260k', prompt: 'x', response_format: { type: 'yaml' } } as never)
      .catch((x: unknown) => x);
    expect(type).toBeInstanceOf(OpenAI.BadRequestError);
    expect((type as InstanceType<typeof OpenAI.BadRequestError>).param).toMatch(/^response_format/);
  });
});
