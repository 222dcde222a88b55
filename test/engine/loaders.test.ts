import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, maxAbsDiff, readJson } from '../helpers/fixtures.ts';
import { greedyBatch, runnerFor, teacherForce } from '../helpers/engine.ts';
import { openModel } from '../../src/engine/loaders/load.ts';
import { encodeSafetensors, parseHeader, toFloat32 } from '../../src/engine/weights/safetensors.ts';

function tensorsOf(path: string) {
  const bytes = new Uint8Array(readFileSync(path));
  const h = parseHeader(bytes, bytes.length);
  return [...h.tensors.values()].map((t) => ({
    name: t.name,
    shape: t.shape,
    data: toFloat32(bytes.subarray(h.dataOffset + t.begin, h.dataOffset + t.end), t.dtype),
  }));
}

/** A copy of a HF folder whose weights are rewritten by `write(dir, tensors)`. */
function rewritten(src: string, write: (dir: string, tensors: ReturnType<typeof tensorsOf>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'versa-model-'));
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(src, f), join(dir, f));
  write(dir, tensorsOf(join(src, 'model.safetensors')));
  return dir;
}

describe('model loaders', () => {
  it('reads a sharded checkpoint (model.safetensors.index.json)', async () => {
    const dir = rewritten(fixture('stories260k/hf'), (d, tensors) => {
      const half = Math.ceil(tensors.length / 2);
      const shards = [tensors.slice(0, half), tensors.slice(half)];
      const weightMap: Record<string, string> = {};
      shards.forEach((part, i) => {
        const file = `model-0000${i + 1}-of-00002.safetensors`;
        writeFileSync(join(d, file), encodeSafetensors(part));
        for (const t of part) weightMap[t.name] = file;
      });
      writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    });
    const runner = await runnerFor(dir);
    const { tokens } = await greedyBatch(runner, [{ prompt: [1] }], 200);
    await runner.release();
    expect(tokens[0]).toEqual(readJson('stories260k/expected/greedy_n200.tokens.json').tokens);
  });

  it('reads F16 and BF16 weights (converted to float32)', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const dir = rewritten(fixture('tiny-gpt2'), (d, tensors) =>
        writeFileSync(join(d, 'model.safetensors'), encodeHalf(tensors, dtype)),
      );
      const runner = await runnerFor(dir);
      const half = await teacherForce(runner, [98, 15, 214, 7]);
      await runner.release();
      const full = await runnerFor(fixture('tiny-gpt2'));
      const reference = await teacherForce(full, [98, 15, 214, 7]);
      await full.release();
      // Rounding the weights to 16 bits moves logits (std ~0.11) by far less than their spread.
      half.forEach((l, t) => expect(maxAbsDiff(l, reference[t])).toBeLessThan(dtype === 'F16' ? 2e-3 : 2e-2));
    }
  });

  it('refuses broken inputs with messages that say what is wrong', () => {
    const tiny = (edit: (config: any) => void) => {
      const dir = mkdtempSync(join(tmpdir(), 'versa-model-'));
      const config = readJson('tiny-gpt2/config.json');
      edit(config);
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      copyFileSync(fixture('tiny-gpt2/model.safetensors'), join(dir, 'model.safetensors'));
      return dir;
    };
    expect(() => openModel(tiny((c) => (c.n_embd = 64)))).toThrow(
      /shape \[1000,32\] but the config implies \[1000,64\]/,
    );
    expect(() => openModel(tiny((c) => ((c.model_type = 'bert'), (c.architectures = ['BertModel']))))).toThrow(
      /unsupported model/,
    );
    expect(() => openModel(tiny((c) => (c.n_layer = 6)))).toThrow(/missing \d+ weight/);
    const truncated = join(mkdtempSync(join(tmpdir(), 'versa-')), 'model.bin');
    writeFileSync(truncated, readFileSync(fixture('stories260k/model.bin')).subarray(0, 50_000));
    expect(() => openModel(truncated)).toThrow(/truncated/);
    expect(() => openModel('/nope')).toThrow(/model not found/);
  });
});

function encodeHalf(tensors: ReturnType<typeof tensorsOf>, dtype: 'F16' | 'BF16'): Uint8Array {
  // Same names and shapes as the float32 file, 2-byte values (round to nearest).
  const header: Record<string, unknown> = {};
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const t of tensors) {
    const out = new Uint16Array(t.data.length);
    const u32 = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    for (let i = 0; i < t.data.length; i++) out[i] = dtype === 'BF16' ? (u32[i] + 0x8000) >>> 16 : toHalf(t.data[i]);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + out.byteLength] };
    offset += out.byteLength;
    parts.push(new Uint8Array(out.buffer));
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const result = new Uint8Array(8 + json.length + offset);
  new DataView(result.buffer).setBigUint64(0, BigInt(json.length), true);
  result.set(json, 8);
  let at = 8 + json.length;
  for (const p of parts) result.set(p, (at += p.length) - p.length);
  return result;
}

function toHalf(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) return sign | (exp < -10 ? 0 : (mant | 0x800000) >> (1 - exp + 13));
  if (exp >= 31) return sign | 0x7c00;
  return sign | ((exp << 10) + ((mant + 0x1000) >> 13)); // a rounding carry moves into the exponent
}
