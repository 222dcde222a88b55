/** A dense float32 tensor in row-major order: the one weight type the engine works with. */
export interface Tensor {
  dims: number[];
  data: Float32Array;
}

/** Weights by their Hugging Face state-dict name. */
export type Weights = Map<string, Tensor>;

export function numel(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Transposes a 2-D tensor [rows, cols] -> [cols, rows], in cache-sized tiles. */
export function transpose2d(t: Tensor): Tensor {
  const [rows, cols] = t.dims;
  const src = t.data;
  const out = new Float32Array(rows * cols);
  const TILE = 64;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let r = r0; r < r1; r++) {
        const at = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[at + c];
      }
    }
  }
  return { dims: [cols, rows], data: out };
}
