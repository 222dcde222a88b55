import { describe, expect, it } from 'vitest';
import { checkFiniteWeights, FiniteWeightsCheck } from '../../src/engine/adapters/finite.ts';
import { readAdapter } from '../../src/engine/adapters/read.ts';
import {
  parseHeader,
  type Dtype,
  type SafetensorsHeader,
  type TensorInfo,
} from '../../src/engine/weights/safetensors.ts';
import { toyConfig, vlmAdapter } from '../helpers/adapters.ts';

/**
 * The finite check reads each element's exponent bits, whatever the chunk boundaries: every dtype
 * an adapter may use, NaN and both infinities at every position, fed whole and a few bytes at a time.
 */

const SIZE: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
/** Little-endian bit patterns. */
const NON_FINITE: Record<string, Record<string, number>> = {
  F32: { nan: 0x7fc00000, inf: 0x7f800000, '-inf': 0xff800000, 'nan (payload)': 0xff800001 },
  F16: { nan: 0x7e00, inf: 0x7c00, '-inf': 0xfc00, 'nan (payload)': 0x7c01 },
  BF16: { nan: 0x7fc0, inf: 0x7f80, '-inf': 0xff80, 'nan (payload)': 0xff81 },
};
/** The largest finite, the smallest subnormal, -0 and 1: none may be refused. */
const FINITE: Record<string, number[]> = {
  F32: [0x7f7fffff, 0xff7fffff, 0x00000001, 0x80000000, 0x3f800000],
  F16: [0x7bff, 0xfbff, 0x0001, 0x8000, 0x3c00],
  BF16: [0x7f7f, 0xff7f, 0x0001, 0x8000, 0x3f80],
};

/** Two tensors of `dtype` (a 3-element one, then a 5-element one), holding `bits` in order. */
function data(dtype: Dtype, bits: number[]): { tensors: Map<string, TensorInfo>; bytes: Uint8Array } {
  const size = SIZE[dtype];
  const bytes = new Uint8Array(bits.length * size);
  bits.forEach((b, i) => {
    for (let k = 0; k < size; k++) bytes[i * size + k] = (b >>> (8 * k)) & 0xff;
  });
  const tensors = new Map<string, TensorInfo>([
    ['a', { name: 'a', dtype, shape: [3], begin: 0, end: 3 * size }],
    ['b', { name: 'b', dtype, shape: [5], begin: 3 * size, end: 8 * size }],
  ]);
  return { tensors, bytes };
}

function feed(tensors: Map<string, TensorInfo>, bytes: Uint8Array, chunk: number): void {
  const check = new FiniteWeightsCheck({ tensors });
  for (let at = 0; at < bytes.length; at += chunk) check.update(bytes.subarray(at, at + chunk));
}

/**
 * The same data as a whole file, as an engine loading an adapter checks it: its data section `shift`
 * bytes into the buffer, so that shift 0 reads aligned tensors through typed-array views and an odd
 * shift takes the byte path.
 */
function whole(tensors: Map<string, TensorInfo>, bytes: Uint8Array, shift: number): void {
  const file = new Uint8Array(shift + bytes.length);
  file.set(bytes, shift);
  checkFiniteWeights({ tensors, dataOffset: shift } as SafetensorsHeader, file);
}

describe('FiniteWeightsCheck', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`${dtype}: finite extremes pass, in any chunking`, () => {
      const bits = [...FINITE[dtype], 0, 0, 0].slice(0, 8);
      const { tensors, bytes } = data(dtype, bits);
      for (const chunk of [1, 3, 5, bytes.length]) expect(() => feed(tensors, bytes, chunk)).not.toThrow();
      for (const shift of [0, 1, 2]) expect(() => whole(tensors, bytes, shift)).not.toThrow();
    });

    it(`${dtype}: NaN and infinities are refused at every position, naming the tensor and element`, () => {
      for (const [what, value] of Object.entries(NON_FINITE[dtype])) {
        for (let position = 0; position < 8; position++) {
          const bits = Array<number>(8).fill(FINITE[dtype][4]);
          bits[position] = value;
          const { tensors, bytes } = data(dtype, bits);
          const [name, element] = position < 3 ? ['a', position] : ['b', position - 3];
          const message = `tensor "${name}" holds a non-finite value (NaN or infinity) at element ${element}`;
          for (const chunk of [1, 3, bytes.length]) {
            expect(() => feed(tensors, bytes, chunk), `${what} at ${position}, chunks of ${chunk}`).toThrow(message);
          }
          for (const shift of [0, 1, 2]) {
            expect(() => whole(tensors, bytes, shift), `${what} at ${position}, whole file at ${shift}`).toThrow(
              message,
            );
          }
        }
      }
    });
  }

  it('leaves other dtypes alone', () => {
    const tensors = new Map<string, TensorInfo>([['ids', { name: 'ids', dtype: 'I32', shape: [1], begin: 0, end: 4 }]]);
    expect(() => feed(tensors, new Uint8Array([0, 0, 0x80, 0x7f]), 4)).not.toThrow();
  });

  it('an engine loading an adapter (a compute node) refuses one with a non-finite weight', () => {
    const config = toyConfig();
    const [cfg, weights] = vlmAdapter(config);
    const header = parseHeader(weights.bytes, weights.bytes.length);
    const t = header.tensors.get('transformer.h.0.adapter_block.project_down.bias')!;
    const bytes = weights.bytes.slice();
    new DataView(bytes.buffer).setFloat32(header.dataOffset + t.begin + 4, Number.POSITIVE_INFINITY, true);
    const files = (w: Uint8Array) => ({
      config: JSON.parse(new TextDecoder().decode(cfg.bytes)),
      files: new Map([
        [cfg.name, cfg.bytes],
        [weights.name, w],
      ]),
    });
    expect(() => readAdapter('ok', files(weights.bytes), config)).not.toThrow();
    expect(() => readAdapter('bad', files(bytes), config)).toThrow(
      /project_down\.bias" holds a non-finite value .* element 1/,
    );
  });
});
