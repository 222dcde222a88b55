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

/** Transposes a 2-D tensor [rows, cols] -> [cols, rows]. */
export function transpose2d(t: Tensor): Tensor {
  const [rows, cols] = t.dims;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[src + c];
  }
  return { dims: [cols, rows], data: out };
}
