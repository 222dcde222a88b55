import { describe, expect, it } from 'vitest';
import { encodeSafetensors, parseHeader, SafetensorsError, toFloat32 } from '../../src/engine/weights/safetensors.ts';

function file(header: object | string, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

const ok = (name = 'w', begin = 0, shape = [2, 2]) => ({
  [name]: { dtype: 'F32', shape, data_offsets: [begin, begin + 4 * shape[0] * shape[1]] },
});

describe('safetensors header validation', () => {
  it('round-trips what encodeSafetensors writes', () => {
    const bytes = encodeSafetensors(
      [
        { name: 'a', shape: [3], data: Float32Array.of(1, 2, 3) },
        { name: 'b', shape: [1, 2], data: Float32Array.of(4, 5) },
      ],
      { k: 'v' },
    );
    const h = parseHeader(bytes, bytes.length);
    expect(h.metadata).toEqual({ k: 'v' });
    expect(h.dataOffset % 8).toBe(0);
    const b = h.tensors.get('b')!;
    expect(Array.from(toFloat32(bytes.subarray(h.dataOffset + b.begin, h.dataOffset + b.end), 'F32'))).toEqual([4, 5]);
  });

  const bad: Array<[string, () => Uint8Array, RegExp]> = [
    ['a file shorter than 8 bytes', () => new Uint8Array(5), /too small/],
    [
      'a header length beyond the file',
      () => {
        const f = file(ok(), 16);
        new DataView(f.buffer).setBigUint64(0, 10_000n, true);
        return f;
      },
      /past the end/,
    ],
    [
      'a 100 MB header claim',
      () => {
        const f = file(ok(), 16);
        new DataView(f.buffer).setBigUint64(0, 100_000_000n, true);
        return f;
      },
      /exceeds the .* limit/,
    ],
    ['a header that is not JSON', () => file('{"a": ', 0), /not valid UTF-8 JSON/],
    ['a header that is a JSON array', () => file('[1,2]', 0), /JSON object/],
    ['an unknown dtype', () => file({ w: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, 4), /unknown dtype/],
    ['a negative dimension', () => file({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /non-negative/],
    [
      'a byte size that disagrees with dtype x shape',
      () => file({ w: { dtype: 'F16', shape: [2, 2], data_offsets: [0, 16] } }, 16),
      /needs 8 bytes/,
    ],
    ['overlapping tensors', () => file({ ...ok('a', 0), ...ok('b', 8) }, 24), /overlaps/],
    ['data past the end (truncated file)', () => file(ok('a', 0, [4, 4]), 32), /past the .*data section/],
    ['a gap between tensors', () => file({ ...ok('a', 0), ...ok('b', 20) }, 36), /gap/],
    ['trailing bytes', () => file(ok(), 20), /cover 16/],
    ['non-string metadata', () => file({ __metadata__: { n: 1 }, ...ok() }, 16), /must be a string/],
  ];
  for (const [what, make, message] of bad) {
    it(`refuses ${what}`, () => {
      const bytes = make();
      expect(() => parseHeader(bytes, bytes.length)).toThrow(SafetensorsError);
      expect(() => parseHeader(bytes, bytes.length)).toThrow(message);
    });
  }

  it('converts F16 and BF16 to float32', () => {
    expect(Array.from(toFloat32(new Uint8Array(Uint16Array.of(0x3c00, 0xc000, 0x0001).buffer), 'F16'))).toEqual([
      1,
      -2,
      2 ** -24,
    ]);
    expect(Array.from(toFloat32(new Uint8Array(Uint16Array.of(0x3f80, 0xbf00).buffer), 'BF16'))).toEqual([1, -0.5]);
  });
});
