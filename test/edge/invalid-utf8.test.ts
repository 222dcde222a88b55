import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH } from '../helpers/compute.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';

/** Bytes that are not UTF-8 (a lone 0xFF) inside an otherwise well-formed JSON body. */
const invalid = (json: string) => {
  const [before, after] = json.split('@');
  return new Uint8Array([...Buffer.from(before), 0xff, 0xfe, ...Buffer.from(after)]) as Uint8Array<ArrayBuffer>;
};

describe('a generation body that is not valid UTF-8', () => {
  let product: TestProduct;
  beforeAll(async () => {
    product = await startProduct();
  });
  afterAll(() => product?.close());

  const post = (url: string, body: Uint8Array<ArrayBuffer> | string, headers: Record<string, string>) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  it('is refused by the edge with a 400 JSON error (chat and completions), as publish refuses it', async () => {
    const edge = (path: string, body: Uint8Array<ArrayBuffer> | string) =>
      post(`${product.registry.url}${path}`, body, { authorization: `Bearer ${product.registry.adminKey}` });
    const chat = await edge(
      '/v1/chat/completions',
      invalid('{"model": "stories260k", "max_tokens": 1, "messages": [{"role": "user", "content": "@"}]}'),
    );
    expect(chat.status).toBe(400);
    expect((await chat.json()).error).toMatchObject({ code: 'invalid_encoding', type: 'invalid_request_error' });
    const text = await edge('/v1/completions', invalid('{"model": "stories260k", "max_tokens": 1, "prompt": "@"}'));
    expect(text.status).toBe(400);
    expect((await text.json()).error.message).toMatch(/not valid UTF-8/);
    // Valid UTF-8 beyond ASCII is fine.
    const ok = await edge('/v1/completions', '{"model": "stories260k", "max_tokens": 1, "prompt": "Ünïcödé ✓"}');
    expect(ok.status).toBe(200);
  });

  it("is refused by the compute node's /generate with a 400 JSON error", async () => {
    const res = await post(
      `${product.compute.url}/v1/internal/generate`,
      invalid('{"prompt": "@", "max_tokens": 1}'),
      AUTH,
    );
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ code: 'invalid_encoding' });
  });
});
