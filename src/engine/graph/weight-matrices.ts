import { transpose2d, type Tensor } from '../weights/tensor.ts';
import {
  bytesAs,
  float32Into,
  float32Of,
  floatBytes,
  type StoredTensor,
  type WeightSource,
} from '../weights/stored.ts';
import {
  bitsOf,
  quantizedShape,
  quantizeRows,
  type QuantizedMatrix,
  type QuantizedShape,
  type WeightFormat,
} from '../weights/quantize.ts';
import { CONTRIB, type GraphBuilder } from './onnx.ts';

/**
 * The checkpoint's weights as graph initializers, in the graph's weight format: float as stored,
 * or quantized (MatMulNBits, GatherBlockQuantized); the products that read them and the
 * embedding lookup. Nothing is read from the checkpoint until the graph's weights are written.
 */

/**
 * How a checkpoint stores a projection: PyTorch nn.Linear [out, in], or GPT-2's Conv1D [in, out].
 * Float weights are used as stored (Gemm transposes on the fly, at no cost once prepacked);
 * quantized ones are packed along `in`.
 */
export type MatrixLayout = 'out_in' | 'in_out';

/**
 * A weight matrix as the graph reads it: float as stored (in the format's float type), or
 * quantized rows of [out, in] (`packed` quantizes them when first asked for).
 */
type Matrix =
  | { kind: 'float'; name: string; layout: MatrixLayout }
  | {
      kind: 'quantized';
      names: { packed: string; scales: string; zeroPoints: string };
      q: QuantizedShape;
      packed: () => Uint8Array;
    };

/**
 * The token-embedding table, which the head also reads when tied: float transposed to [d, V]
 * (see DecoderGraph.head), or quantized [V, d] rows that both GatherBlockQuantized and MatMulNBits read.
 */
export type EmbeddingTable = { kind: 'float'; tableT: string } | Extract<Matrix, { kind: 'quantized' }>;

export class WeightMatrices {
  private readonly halved = new Map<string, string>();
  /** Where stacked() converts the matrices it hands the quantizer (grown to the largest). */
  private scratch = new Float32Array(0);

  constructor(
    private readonly graph: GraphBuilder,
    private readonly source: WeightSource,
    readonly format: WeightFormat,
  ) {}

  /** A float32 weight by its Hugging Face name, as stored (norms, biases, position embeddings). */
  float32(name: string): string {
    const t = this.stored(name);
    return this.graph.weight(name, 'float32', t.dims, () => floatBytes(float32Of(t), 'float32'));
  }

  /** Whether the checkpoint has a weight (optional biases). */
  has(name: string): boolean {
    return this.source.has(name);
  }

  /** The rows of a stored [out, in] weight. */
  rows(name: string): number {
    return this.stored(name).dims[0];
  }

  /** A weight as the checkpoint stores it (nothing is read yet). */
  private stored(name: string): StoredTensor {
    const t = this.source.get(name);
    if (!t) throw new Error(`weight ${name} is missing`);
    return t;
  }

  /** A weight's values as float32 (read from the checkpoint now, converted if stored as 16 bits). */
  private float(name: string): Tensor {
    const t = this.stored(name);
    return { dims: [...t.dims], data: float32Of(t) };
  }

  /**
   * [out, in] weights stacked by rows, as float32, for the quantizer to read once: converted into
   * one scratch buffer that every matrix reuses (a float32 checkpoint of one part is only viewed).
   * Valid until the next call.
   */
  private stacked(parts: readonly string[]): Tensor {
    const stored = parts.map((p) => this.stored(p));
    const dims = [total(stored.map((t) => t.dims[0])), stored[0].dims[1]];
    if (parts.length === 1 && stored[0].dtype === 'F32') return this.float(parts[0]);
    const size = dims[0] * dims[1];
    if (this.scratch.length < size) this.scratch = new Float32Array(size);
    let at = 0;
    for (const t of stored) at += float32Into(t, this.scratch, at).length;
    return { dims, data: this.scratch.subarray(0, size) };
  }

  /**
   * A projection's weight matrix, in the graph's weight format. With several `parts` ([out, in]
   * matrices of one input, e.g. q, k and v), their rows are stacked into one matrix named `name`,
   * so that one product computes them all. Quantization is per row, so the stacked matrix holds
   * exactly the bytes of each part quantized alone.
   */
  matrix(name: string, layout: MatrixLayout, parts: readonly string[] = [name]): Matrix {
    const stored = parts.map((p) => this.stored(p));
    if (parts.length > 1 && layout !== 'out_in') throw new Error('only [out, in] matrices are stacked');
    const dims = [total(stored.map((t) => t.dims[0])), stored[0].dims[1]];
    const float = this.format.float;
    if (this.format.quantize === 'none') {
      const bytes = () => concatBytes(stored.map((t) => bytesAs(t, float)));
      return { kind: 'float', name: this.graph.weight(name, float, dims, bytes), layout };
    }
    const [rows, cols] = layout === 'in_out' ? [dims[1], dims[0]] : dims;
    const q = quantizedShape(rows, cols, bitsOf(this.format.quantize), this.format.block);
    // Quantized once, when the first of its three weights is asked for.
    let made: QuantizedMatrix | undefined;
    const quantized = () => {
      if (made) return made;
      const t = layout === 'in_out' ? transpose2d(this.float(name)) : this.stacked(parts);
      return (made = quantizeRows(t.data, rows, cols, q.bits, q.block));
    };
    const g = this.graph;
    const names = {
      packed: g.weight(`${name}.q`, 'uint8', [rows, q.blocks, (q.block * q.bits) / 8], () => quantized().packed),
      scales: g.weight(`${name}.scales`, 'float32', [rows, q.blocks], () => floatBytes(quantized().scales, 'float32')),
      zeroPoints: g.weight(`${name}.zero_points`, 'uint8', [rows, q.zeroPointBytes], () => quantized().zeroPoints),
    };
    return { kind: 'quantized', names, q, packed: () => quantized().packed };
  }

  /**
   * The biases of stacked projections as one float32 vector named `name`: each part's bias where
   * the checkpoint has it, zeros where not; `sizes` are the parts' output widths.
   */
  stackedBias(name: string, parts: readonly string[], sizes: readonly number[]): string {
    const bias = () => {
      const data = new Float32Array(total(sizes));
      parts.reduce((at, p, i) => {
        if (this.has(p)) data.set(this.float(p).data, at);
        return at + sizes[i];
      }, 0);
      return floatBytes(data, 'float32');
    };
    return this.graph.weight(name, 'float32', [total(sizes)], bias);
  }

  /**
   * x [N, in] times a matrix: Gemm or MatMul for float weights (in float16/bfloat16 the product
   * is taken in that type, x cast to it and the result back), MatMulNBits for quantized weights.
   */
  times(x: string, m: Matrix): string {
    const g = this.graph;
    if (m.kind === 'float') {
      const xs = this.inFloatType(x);
      const y = m.layout === 'in_out' ? g.matmul(xs, m.name) : g.op('Gemm', [xs, m.name], { transB: 1 });
      return this.format.float === 'float32' ? y : g.cast(y, 'float32');
    }
    const { q, names } = m;
    const attrs = { K: q.cols, N: q.rows, bits: q.bits, block_size: q.block, accuracy_level: 4 };
    return g.op('MatMulNBits', [x, names.packed, names.scales, names.zeroPoints], attrs, undefined, CONTRIB);
  }

  /** x in the float type of the weights (one Cast per value, shared by the projections that read it). */
  private inFloatType(x: string): string {
    if (this.format.float === 'float32') return x;
    let out = this.halved.get(x);
    if (!out) this.halved.set(x, (out = this.graph.cast(x, this.format.float)));
    return out;
  }

  /** A [V, d] vocabulary matrix: the token embeddings, or an untied output head (see EmbeddingTable). */
  vocabTable(name: string): EmbeddingTable {
    if (this.format.quantize !== 'none') return this.matrix(name, 'out_in') as EmbeddingTable;
    const [V, d] = this.stored(name).dims;
    const tableT = () => floatBytes(transpose2d(this.float(name)).data, this.format.float);
    return { kind: 'float', tableT: this.graph.weight(name, this.format.float, [d, V], tableT) };
  }

  /** The head's product: last [L, d] times the vocabulary table. */
  timesVocab(last: string, table: EmbeddingTable): string {
    return this.times(last, table.kind === 'float' ? { kind: 'float', name: table.tableT, layout: 'in_out' } : table);
  }

  /** The table's rows of `ids` [B, S], as float32 [B, S, d]. */
  lookup(table: EmbeddingTable, ids: string, d: number): string {
    const g = this.graph;
    if (table.kind === 'float') {
      const x = g.transpose(g.gather(table.tableT, ids, 1), [1, 2, 0]); // [d, B, S] -> [B, S, d]
      return this.format.float === 'float32' ? x : g.cast(x, 'float32');
    }
    const { q, names, packed } = table;
    // GatherBlockQuantized wants the packed rows as [V, d * bits / 8]: the same bytes, a 2-D shape.
    const rows = g.weight(`${names.packed}.rows`, 'uint8', [q.rows, (q.blocks * q.block * q.bits) / 8], packed);
    const attrs = { bits: q.bits, block_size: q.block, gather_axis: 0, quantize_axis: 1 };
    const x = g.op('GatherBlockQuantized', [rows, ids, names.scales, names.zeroPoints], attrs, undefined, CONTRIB);
    return q.blocks * q.block !== d ? g.slice(x, [0], [d], [2]) : x; // the last block's padding
  }

  /** Gemma's RMSNorm weight: (1 + w), in float32 as transformers computes it. */
  onePlus(name: string): string {
    const onePlus = () =>
      floatBytes(
        this.float(name).data.map((x) => Math.fround(1 + x)),
        'float32',
      );
    return this.graph.weight(`${name}+1`, 'float32', this.stored(name).dims, onePlus);
  }
}

const total = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

function concatBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.byteLength), 0);
  return out;
}
