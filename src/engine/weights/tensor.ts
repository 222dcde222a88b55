/** A dense float32 tensor in row-major order: the one weight type the engine works with. */
export interface Tensor {
  dims: number[];
  data: Float32Array;
}

/** Weights by their Hugging Face state-dict name. */
export type Weights = Map<string, Tensor>;

/** Transposes a 2-D tensor [rows, cols] -> [cols, rows]. */
export function transpose2d(t: Tensor): Tensor {
  const [rows, cols] = t.dims;
  return { dims: [cols, rows], data: transpose(t.data, rows, cols) };
}

/**
 * [rows, cols] -> [cols, rows], optionally scaling column c by colScale[c]. Tiled, so that both
 * sides stay in cache: adapter loading is dominated by this.
 */
export function transpose(w: Float32Array, rows: number, cols: number, colScale?: Float32Array): Float32Array {
  const out = new Float32Array(w.length);
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let c = c0; c < c1; c++) {
        const scale = colScale ? colScale[c] : 1;
        for (let r = r0; r < r1; r++) out[c * rows + r] = w[r * cols + c] * scale;
      }
    }
  }
  return out;
}
