import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors, parseHeader } from '../../src/engine/weights/safetensors.ts';
import {
  errorOf,
  loraAdapter,
  publish,
  publishForm,
  published,
  registerBase,
  snapshot,
  toyConfig,
  vlmAdapter,
  type AdapterFiles,
} from '../helpers/adapters.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

const KiB = 1024;
const config = toyConfig();
const vlm = vlmAdapter(config);
const vlmConfig = vlm[0];
const weights = vlm[1].bytes;

/** A safetensors file from a raw header object and data, optionally lying about the header length. */
function rawSafetensors(header: unknown, data: Uint8Array, claimedHeaderLength?: number | bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(claimedHeaderLength ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/**
 * An adapter's files with its weights re-encoded in `dtype` (zeros, which are finite) and one
 * element of one tensor set to the raw bits `poison` (little-endian).
 */
function poisoned(
  files: AdapterFiles,
  dtype: 'F32' | 'F16' | 'BF16',
  poison: { tensor: string; element: number; bits: number },
): AdapterFiles {
  const weights = files.find((f) => f.name.endsWith('.safetensors'))!;
  const size = dtype === 'F32' ? 4 : 2;
  const header: Record<string, unknown> = {};
  let offset = 0;
  let at = -1;
  for (const t of parseHeader(weights.bytes, weights.bytes.length).tensors.values()) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * size;
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    if (t.name === poison.tensor) at = offset + poison.element * size;
    offset += bytes;
  }
  if (at < 0) throw new Error(`no tensor ${poison.tensor}`);
  const data = new Uint8Array(offset);
  for (let i = 0; i < size; i++) data[at + i] = (poison.bits >>> (8 * i)) & 0xff;
  return files.map((f) => (f === weights ? { name: f.name, bytes: rawSafetensors(header, data) } : f));
}

/** A LoRA adapter whose adapter_config.json has `changes` applied. */
function loraWith(changes: Record<string, unknown>): AdapterFiles {
  const [cfg, weights] = loraAdapter(config);
  const edited = { ...JSON.parse(new TextDecoder().decode(cfg.bytes)), ...changes };
  return [{ name: cfg.name, bytes: new TextEncoder().encode(JSON.stringify(edited)) }, weights];
}

const LORA_B0 = 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight';

function withWeights(bytes: Uint8Array): AdapterFiles {
  return [vlmConfig, { name: 'adapter.safetensors', bytes }];
}

function withHeaderLength(bytes: Uint8Array, n: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setBigUint64(0, BigInt(n), true);
  return copy;
}

const json = (method: string, body: string, type = 'application/json') => ({
  method,
  headers: { 'content-type': type },
  body,
});

interface Case {
  name: string;
  send: (reg: TestRegistry) => Promise<Response>;
  status: number;
  code?: string;
  message?: RegExp;
}

const cases: Case[] = [
  // JSON bodies
  {
    name: 'malformed JSON',
    send: (r) => r.fetch('/v1/adapters/good/aliases/production', json('PUT', '{"version":')),
    status: 400,
    code: 'invalid_json',
  },
  {
    name: 'JSON of the wrong shape',
    send: (r) => r.fetch('/v1/adapters/good/aliases/production', json('PUT', '{"version":"one"}')),
    status: 400,
    code: 'validation_error',
  },
  {
    name: 'unknown JSON field',
    send: (r) => r.fetch('/v1/adapters/good/aliases/production', json('PUT', '{"version":1,"forced":true}')),
    status: 400,
    code: 'validation_error',
  },
  {
    name: 'wrong content type (JSON route)',
    send: (r) => r.fetch('/v1/adapters/good/aliases/production', json('PUT', 'version=1', 'text/plain')),
    status: 415,
  },
  {
    name: 'wrong content type (publish)',
    send: (r) => r.fetch('/v1/adapters/good/versions', json('POST', '{"base":"toy@1"}')),
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'oversized JSON body',
    send: (r) => r.fetch('/v1/models/toy/versions', json('POST', JSON.stringify({ notes: 'x'.repeat(20 * KiB) }))),
    status: 413,
  },
  {
    name: 'invalid base model config',
    send: (r) =>
      r.fetch(
        '/v1/models/toy/versions',
        json('POST', JSON.stringify({ architecture: 'gpt2', config: { ...config, numLayers: -1 }, files: [] })),
      ),
    status: 400,
  },
  {
    name: 'a base model config with a million layers (bounded before any work)',
    send: (r) =>
      r.fetch(
        '/v1/models/toy/versions',
        json('POST', JSON.stringify({ architecture: 'gpt2', config: { ...config, numLayers: 1_000_000 }, files: [] })),
      ),
    status: 400,
  },
  {
    name: 'base version with a path-like file name',
    send: (r) =>
      r.fetch(
        '/v1/models/toy/versions',
        json(
          'POST',
          JSON.stringify({ architecture: 'gpt2', config, files: [{ name: '../x', sha256: 'a'.repeat(64), bytes: 1 }] }),
        ),
      ),
    status: 400,
  },
  {
    name: 'version is not an integer',
    send: (r) => r.fetch('/v1/adapters/good/versions/abc'),
    status: 400,
    code: 'validation_error',
  },
  { name: 'version 0', send: (r) => r.fetch('/v1/adapters/good/versions/0'), status: 400 },
  { name: 'bad cursor', send: (r) => r.fetch('/v1/adapters?cursor=notacursor'), status: 400 },

  // names with path characters
  {
    name: 'adapter name with ../ (encoded)',
    send: (r) => publish(r, '..%2F..%2Fetc', { base: 'toy@1' }, vlm),
    status: 400,
    code: 'validation_error',
  },
  { name: 'adapter name with @', send: (r) => publish(r, 'a%40b', { base: 'toy@1' }, vlm), status: 400 },
  { name: 'adapter name with a slash', send: (r) => r.fetch('/v1/adapters/a%2Fb'), status: 400 },
  {
    name: 'download name with ../',
    send: (r) => r.fetch('/v1/adapters/good/versions/1/files/..%2F..%2Fregistry.db'),
    status: 400,
  },
  {
    name: 'alias with path characters',
    send: (r) => r.fetch('/v1/adapters/good/aliases/..%2Fx', json('PUT', '{"version":1}')),
    status: 400,
  },
  {
    name: 'file part named ../../evil.json',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, [{ name: '../../evil.json', bytes: new Uint8Array(4) }, ...vlm]),
    status: 400,
    code: 'invalid_file_name',
  },
  {
    name: 'file part named sub/adapter.safetensors',
    send: (r) =>
      publish(r, 'good', { base: 'toy@1' }, [vlmConfig, { name: 'sub/adapter.safetensors', bytes: weights }]),
    status: 400,
    code: 'invalid_file_name',
  },

  // corrupt safetensors
  {
    name: 'truncated safetensors',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, withWeights(weights.slice(0, weights.length - 10))),
    status: 400,
    code: 'invalid_safetensors',
    message: /truncated/,
  },
  {
    name: 'trailing bytes',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, withWeights(new Uint8Array([...weights, 1, 2, 3, 4]))),
    status: 400,
    code: 'invalid_safetensors',
  },
  {
    name: 'header length beyond the file',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, withWeights(withHeaderLength(weights, weights.length + 100))),
    status: 400,
    code: 'invalid_safetensors',
    message: /runs past the end/,
  },
  {
    name: 'a 100 MB header claim',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, withWeights(withHeaderLength(weights, 100_000_000))),
    status: 400,
    code: 'invalid_safetensors',
    message: /limit/,
  },
  {
    name: 'a file shorter than 8 bytes',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, withWeights(new Uint8Array(5))),
    status: 400,
    code: 'invalid_safetensors',
  },
  {
    name: 'overlapping offsets',
    send: (r) =>
      publish(
        r,
        'good',
        { base: 'toy@1' },
        withWeights(
          rawSafetensors(
            {
              a: { dtype: 'F32', shape: [16], data_offsets: [0, 64] },
              b: { dtype: 'F32', shape: [16], data_offsets: [32, 96] },
            },
            new Uint8Array(96),
          ),
        ),
      ),
    status: 400,
    code: 'invalid_safetensors',
    message: /overlaps/,
  },
  {
    name: 'wrong dtype size',
    send: (r) =>
      publish(
        r,
        'good',
        { base: 'toy@1' },
        withWeights(rawSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }, new Uint8Array(8))),
      ),
    status: 400,
    code: 'invalid_safetensors',
    message: /needs 16 bytes/,
  },
  {
    name: 'header that is not JSON',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, withWeights(rawSafetensors('{not json', new Uint8Array(0)))),
    status: 400,
    code: 'invalid_safetensors',
  },
  {
    name: 'unknown dtype',
    send: (r) =>
      publish(
        r,
        'good',
        { base: 'toy@1' },
        withWeights(rawSafetensors({ a: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4))),
      ),
    status: 400,
    code: 'invalid_safetensors',
  },

  // adapters that do not fit their base
  {
    name: 'shapes that do not fit the base',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, vlmAdapter(toyConfig({ hiddenSize: 32, headDim: 16 }))),
    status: 400,
    code: 'invalid_adapter',
    message: /shape/,
  },
  {
    name: 'too many layers for the base',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, vlmAdapter(toyConfig({ numLayers: 3 }))),
    status: 400,
    code: 'invalid_adapter',
  },
  {
    name: 'a llama adapter on a gpt2 base',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, vlmAdapter(toyConfig({ architecture: 'llama' }))),
    status: 400,
    code: 'invalid_adapter',
  },
  {
    name: 'task tokens that do not match task_embeddings',
    send: (r) =>
      publish(
        r,
        'good',
        { base: 'toy@1' },
        vlmAdapter(config, { taskTokens: ['<|a|>'], declaredTaskTokens: ['<|a|>', '<|b|>'] }),
      ),
    status: 400,
    code: 'invalid_adapter',
    message: /task_embeddings/,
  },
  {
    name: 'duplicate task tokens',
    send: (r) =>
      publish(
        r,
        'good',
        { base: 'toy@1' },
        vlmAdapter(config, { taskTokens: ['<|a|>', '<|b|>'], declaredTaskTokens: ['<|a|>', '<|a|>'] }),
      ),
    status: 400,
    code: 'invalid_adapter',
    message: /duplicates/,
  },
  {
    name: 'LoRA weights without adapter_config.json',
    send: (r) =>
      publish(r, 'good', { base: 'toy@1' }, [
        {
          name: 'adapter_model.safetensors',
          bytes: encodeSafetensors([{ name: 'x', shape: [1], data: new Float32Array(1) }]),
        },
      ]),
    status: 400,
    code: 'invalid_adapter',
  },
  {
    name: 'VLM weights under the LoRA file name',
    send: (r) =>
      publish(r, 'good', { base: 'toy@1' }, [vlmConfig, { name: 'adapter_model.safetensors', bytes: weights }]),
    status: 400,
    code: 'invalid_adapter',
  },
  {
    name: 'two weights files',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, [...vlm, { name: 'extra.safetensors', bytes: weights }]),
    status: 400,
    code: 'invalid_adapter',
  },
  {
    name: 'pickled weights',
    send: (r) =>
      publish(r, 'good', { base: 'toy@1' }, [...vlm, { name: 'adapter_model.bin', bytes: new Uint8Array(16) }]),
    status: 400,
    code: 'invalid_adapter',
  },
  {
    name: 'adapter_config.json that is not JSON',
    send: (r) =>
      publish(r, 'good', { base: 'toy@1' }, [
        { name: 'adapter_config.json', bytes: new TextEncoder().encode('{') },
        vlm[1],
      ]),
    status: 400,
    code: 'invalid_adapter',
  },
  {
    name: 'no weights file',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, [vlmConfig]),
    status: 400,
    code: 'invalid_adapter',
  },

  // the form itself
  { name: 'no base field', send: (r) => publish(r, 'good', {}, vlm), status: 400, code: 'part_order' },
  {
    name: 'base not registered',
    send: (r) => publish(r, 'good', { base: 'nope@1' }, vlm),
    status: 400,
    code: 'base_not_found',
  },
  {
    name: 'base version not registered',
    send: (r) => publish(r, 'good', { base: 'toy@7' }, vlm),
    status: 400,
    code: 'base_not_found',
  },
  { name: 'base that is an alias', send: (r) => publish(r, 'good', { base: 'toy@latest' }, vlm), status: 400 },
  {
    name: 'unknown field',
    send: (r) => publish(r, 'good', { base: 'toy@1', colour: 'red' }, vlm),
    status: 400,
    code: 'unknown_field',
  },
  {
    name: 'metrics that are not JSON',
    send: (r) => publish(r, 'good', { base: 'toy@1', metrics: '{oops' }, vlm),
    status: 400,
    code: 'validation_error',
  },
  {
    name: 'metrics that are not an object',
    send: (r) => publish(r, 'good', { base: 'toy@1', metrics: '[1,2]' }, vlm),
    status: 400,
    code: 'validation_error',
  },
  {
    name: 'a bad tag',
    send: (r) => publish(r, 'good', { base: 'toy@1', tags: 'ok,not ok' }, vlm),
    status: 400,
    code: 'validation_error',
  },
  {
    name: 'a bad alias',
    send: (r) => publish(r, 'good', { base: 'toy@1', alias: 'Prod!' }, vlm),
    status: 400,
    code: 'validation_error',
  },
  {
    name: 'a bad visibility',
    send: (r) => publish(r, 'good', { base: 'toy@1', visibility: 'secret' }, vlm),
    status: 400,
    code: 'validation_error',
  },
  {
    name: 'a duplicate file',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, [vlmConfig, vlmConfig, vlm[1]]),
    status: 400,
    code: 'duplicate_file',
  },
  {
    name: 'weights before base',
    send: (r) => {
      const form = publishForm({}, vlm);
      form.append('base', 'toy@1');
      return r.fetch('/v1/adapters/good/versions', { method: 'POST', body: form });
    },
    status: 400,
    code: 'part_order',
  },
  {
    name: 'adapter_config.json after the weights',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, [vlm[1], vlmConfig]),
    status: 400,
    code: 'part_order',
  },
  {
    name: 'a multipart body cut short',
    send: (r) =>
      r.fetch('/v1/adapters/good/versions', {
        method: 'POST',
        headers: { 'content-type': 'multipart/form-data; boundary=XyZ' },
        body:
          '--XyZ\r\nContent-Disposition: form-data; name="base"\r\n\r\ntoy@1\r\n' +
          '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="adapter.safetensors"\r\n\r\nabc',
      }),
    status: 400,
    code: 'invalid_multipart',
  },
  {
    name: 'a multipart body without boundary parameter',
    send: (r) =>
      r.fetch('/v1/adapters/good/versions', {
        method: 'POST',
        headers: { 'content-type': 'multipart/form-data' },
        body: 'x',
      }),
    status: 415,
  },

  // weights and hyperparameters that only make sense as an attack
  {
    name: 'NaN in an F32 weight',
    send: (r) =>
      publish(
        r,
        'good',
        { base: 'toy@1' },
        poisoned(vlm, 'F32', {
          tensor: 'transformer.h.1.adapter_block.project_up.weight',
          element: 5,
          bits: 0x7fc00000,
        }),
      ),
    status: 400,
    code: 'invalid_adapter',
    message: /"transformer\.h\.1\.adapter_block\.project_up\.weight" holds a non-finite value .* element 5$/,
  },
  {
    name: 'infinity in an F16 weight',
    send: (r) =>
      publish(
        r,
        'good',
        { base: 'toy@1' },
        poisoned(loraAdapter(config), 'F16', { tensor: LORA_B0, element: 0, bits: 0x7c00 }),
      ),
    status: 400,
    code: 'invalid_adapter',
    message: /lora_B\.weight" holds a non-finite value .* element 0$/,
  },
  {
    name: '-infinity in a BF16 weight',
    send: (r) =>
      publish(
        r,
        'good',
        { base: 'toy@1' },
        poisoned(vlm, 'BF16', { tensor: 'task_embeddings', element: 15, bits: 0xff80 }),
      ),
    status: 400,
    code: 'invalid_adapter',
    message: /"task_embeddings" holds a non-finite value .* element 15$/,
  },
  {
    name: 'lora_alpha 1e308',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, loraWith({ lora_alpha: 1e308 })),
    status: 400,
    code: 'invalid_adapter',
    message: /lora_alpha must be a number from -10000 to 10000 \(got 1e\+308\)/,
  },
  {
    name: 'alpha_pattern value 1e300',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, loraWith({ alpha_pattern: { c_attn: 1e300 } })),
    status: 400,
    code: 'invalid_adapter',
    message: /alpha_pattern\["c_attn"\]/,
  },
  {
    name: 'scale lora_alpha/r beyond bounds',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, loraWith({ lora_alpha: 5000 })),
    status: 400,
    code: 'invalid_adapter',
    message: /scale lora_alpha\/r = 2500/,
  },
  {
    name: 'r out of bounds',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, loraWith({ r: 100_000 })),
    status: 400,
    code: 'invalid_adapter',
    message: /r must be an integer from 1 to 4096/,
  },
  {
    name: 'lora_dropout outside [0, 1)',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, loraWith({ lora_dropout: 1.5 })),
    status: 400,
    code: 'invalid_adapter',
    message: /lora_dropout/,
  },
  {
    name: "an adapter above the tenant's size bound (10 % of the base by default)",
    send: (r) => publish(r, 'good', { base: 'toy@1' }, vlmAdapter(config, { bottleneck: 16 })),
    status: 400,
    code: 'adapter_too_large',
    message: /1,168 parameters, more than this tenant's bound of 812 \(10% of the 8,128 parameters of toy@1\)/,
  },

  // size limits
  {
    name: 'oversized weights',
    send: (r) => publish(r, 'good', { base: 'toy@1' }, vlmAdapter(config, { bottleneck: 600 })),
    status: 413,
    code: 'payload_too_large',
  },
  {
    name: 'oversized small file',
    send: (r) =>
      publish(r, 'good', { base: 'toy@1' }, [{ name: 'README.md', bytes: new Uint8Array(5 * KiB).fill(65) }, ...vlm]),
    status: 413,
  },
  {
    name: 'oversized field',
    send: (r) => publish(r, 'good', { base: 'toy@1', card: 'x'.repeat(9 * KiB) }, vlm),
    status: 413,
  },
  {
    name: 'oversized request (Content-Length)',
    send: (r) =>
      r.fetch('/v1/adapters/good/versions', {
        method: 'POST',
        headers: { 'content-type': 'multipart/form-data; boundary=XyZ' },
        body: new Uint8Array(600 * KiB),
      }),
    status: 413,
  },
  {
    name: 'too many files',
    send: (r) =>
      publish(r, 'good', { base: 'toy@1' }, [
        ...Array.from({ length: 5 }, (_, i) => ({ name: `n${i}.txt`, bytes: new Uint8Array(1) })),
        ...vlm,
      ]),
    status: 413,
  },
];

describe.each(BACKENDS)('bad input gets a clear 4xx JSON error and changes nothing (%s)', (backend) => {
  let reg: TestRegistry;

  beforeAll(async () => {
    reg = await startRegistry(backend, {
      limits: {
        maxWeightsBytes: 64 * KiB,
        maxSmallFileBytes: 4 * KiB,
        maxFieldBytes: 8 * KiB,
        maxJsonBytes: 16 * KiB,
        maxFiles: 6,
      },
    });
    await registerBase(reg, 'toy');
    // A valid version, alias and files to aim the bad requests at.
    await published(reg, 'good', { base: 'toy@1', alias: 'production' }, vlm);
  });
  afterAll(() => reg?.close());

  it.each(cases)('$name', async (c) => {
    const before = await snapshot(reg);
    const res = await c.send(reg);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const err = await errorOf(res);
    expect(err.status, err.message).toBe(c.status);
    if (c.code) expect(err.code, err.message).toBe(c.code);
    if (c.message) expect(err.message).toMatch(c.message);
    expect(err.message.length).toBeGreaterThan(5);
    expect(await snapshot(reg)).toEqual(before);
  });

  it('still publishes good input afterwards', async () => {
    expect((await published(reg, 'good', { base: 'toy@1' }, vlmAdapter(config, { seed: 2 }))).version).toBe(2);
  });
});
