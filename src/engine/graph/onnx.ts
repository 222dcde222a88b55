import { basename } from 'node:path';
import onnxProto from 'onnx-proto';
import type { Tensor } from '../weights/tensor.ts';
import type { WeightsFile } from '../weights/cache.ts';

const { onnx } = onnxProto;
const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

/** onnxruntime's contrib-op domain (the fused kernels: MatMulNBits, RotaryEmbedding, ...). */
export const CONTRIB = 'com.microsoft';

export type ElemType = 'float32' | 'float16' | 'bfloat16' | 'int64' | 'bool' | 'uint8';
const ELEM: Record<ElemType, number> = {
  float32: DT.FLOAT,
  float16: DT.FLOAT16,
  bfloat16: DT.BFLOAT16,
  int64: DT.INT64,
  bool: DT.BOOL,
  uint8: DT.UINT8,
};

/** A serialised graph and the weight bytes it references (ONNX external data, one "file" per tensor). */
export interface EncodedGraph {
  model: Uint8Array;
  externalData: Array<{ path: string; data: Uint8Array }>;
  /**
   * Weights onnxruntime reads from a file instead (the converted-weights cache's, memory-mapped):
   * each external-data location of the graph -> its bytes in `file`. `externalData` holds the rest.
   */
  weightsFile?: WeightsFile;
}

/**
 * The model with the initializers that `weightsFile` holds pointing into it (by its base name:
 * onnxruntime takes external data only relative to the model's folder, where the session then
 * loads the model from), and the others (computed constants, small) inline: onnxruntime takes
 * external data from files or from memory, not both.
 */
export function referencingFile(graph: EncodedGraph & { weightsFile: WeightsFile }): Uint8Array {
  const decoded = onnx.ModelProto.decode(graph.model);
  const name = basename(graph.weightsFile.file);
  const inMemory = new Map(graph.externalData.map((e) => [e.path, e.data]));
  for (const t of decoded.graph!.initializer!) {
    const location = t.externalData?.find((e) => e.key === 'location')?.value ?? undefined;
    if (location === undefined) continue;
    const at = graph.weightsFile.at.get(location);
    if (at) {
      t.externalData = [
        { key: 'location', value: name },
        { key: 'offset', value: String(at.offset) },
        { key: 'length', value: String(at.length) },
      ];
    } else {
      const data = inMemory.get(location);
      if (!data) throw new Error(`no bytes for the weight ${t.name} (${location})`);
      t.rawData = data;
      t.externalData = [];
      t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
    }
  }
  return onnx.ModelProto.encode(decoded).finish();
}

/**
 * A weight's bytes, or how to make them from the checkpoint (read, converted, quantized). Made
 * only when needed, so that the converted-weights cache (weights/cache.ts) can supply them instead.
 */
type WeightBytes = Uint8Array | (() => Uint8Array);

/** One weight of a built graph: its initializer and its external-data "file". */
export interface GraphWeight {
  name: string;
  type: ElemType;
  dims: readonly number[];
  /** The external-data location the initializer names. */
  path: string;
  /** Made from the checkpoint (given as a function): what a converted-weights cache may hold. */
  converted: boolean;
  /** The bytes, made on first use. */
  bytes(): Uint8Array;
}

/** A serialised graph whose weights are made when first asked for (see WeightBytes). */
export class BuiltGraph implements EncodedGraph {
  constructor(
    readonly model: Uint8Array,
    readonly weights: readonly GraphWeight[],
  ) {}

  /** Every weight's bytes, made now where not yet. */
  get externalData(): EncodedGraph['externalData'] {
    return this.weights.map((w) => ({ path: w.path, data: w.bytes() }));
  }
}

/** A symbolic (string) or fixed (number) dimension of a graph input or output. */
export type Dim = string | number;
type AttrValue = number | number[] | string | { float: number };

/**
 * A small builder over onnx-proto: each method adds one node and returns the name of its output,
 * so model code reads like the math. Hand-written because no maintained TypeScript ONNX graph
 * builder exists; onnx-proto supplies the (de)serialisation.
 */
export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly external: GraphWeight[] = [];
  private readonly constants = new Map<string, string>();
  /** Values exposed as graph outputs under another name: renamed at encode, no Identity copy. */
  private readonly renames = new Map<string, string>();
  private counter = 0;

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(value: string, name: string, type: ElemType, dims: Dim[]): void {
    const produced = this.nodes.some((n) => n.output?.includes(value));
    if (produced && !this.renames.has(value)) this.renames.set(value, name);
    else this.op('Identity', [value], {}, name); // a graph input, an initializer, or already an output
    this.outputs.push(valueInfo(name, type, dims));
  }

  /**
   * A weight, kept out of the protobuf: onnxruntime reads it from `bytes` (external data in
   * memory), so the graph is a few hundred kilobytes whatever the model's size.
   */
  weight(name: string, type: ElemType, dims: readonly number[], bytes: WeightBytes): string {
    const path = `w${this.external.length}`;
    this.initializers.push({
      name,
      dims: [...dims],
      dataType: ELEM[type],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [{ key: 'location', value: path }],
    });
    let made = typeof bytes === 'function' ? undefined : bytes;
    const bytesOf = () => (made ??= (bytes as () => Uint8Array)());
    this.external.push({ name, type, dims: [...dims], path, converted: typeof bytes === 'function', bytes: bytesOf });
    return name;
  }

  /** A float32 weight (see weight()). */
  tensor(name: string, t: Tensor): string {
    return this.weight(name, 'float32', t.dims, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }

  /** A small int64 constant (shapes, axes, indices), shared when repeated. */
  ints(values: number[]): string {
    const key = `i64:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const_${this.constants.size}`;
      const data = BigInt64Array.from(values.map(BigInt));
      this.initializers.push({ name, dims: [values.length], dataType: DT.INT64, rawData: new Uint8Array(data.buffer) });
      this.constants.set(key, name);
    }
    return name;
  }

  /** A float32 scalar constant. */
  scalar(value: number): string {
    return this.scalarOf('f32', value, DT.FLOAT, Float32Array.of(value));
  }

  /** An int64 scalar constant (Range's bounds). */
  intScalar(value: number): string {
    return this.scalarOf('i64s', value, DT.INT64, BigInt64Array.of(BigInt(value)));
  }

  private scalarOf(kind: string, value: number, dataType: number, data: Float32Array | BigInt64Array): string {
    const key = `${kind}:${value}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const_${this.constants.size}`;
      this.initializers.push({ name, dims: [], dataType, rawData: new Uint8Array(data.buffer) });
      this.constants.set(key, name);
    }
    return name;
  }

  /** Adds a node with one output; returns the output's name. `domain` 'com.microsoft' for contrib ops. */
  op(type: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string, domain = ''): string {
    const out = name ?? `${type.toLowerCase()}_${this.counter++}`;
    this.nodes.push({ opType: type, domain, input: inputs, output: [out], attribute: attributes(attrs) });
    return out;
  }

  /**
   * Adds a node with several outputs. Outputs listed in `unused` are left unnamed (ONNX's way of
   * not asking for an optional output) and come back as ''.
   */
  opN(
    type: string,
    inputs: string[],
    count: number,
    attrs: Record<string, AttrValue> = {},
    domain = '',
    unused: readonly number[] = [],
  ): string[] {
    const outs = Array.from({ length: count }, (_, i) =>
      unused.includes(i) ? '' : `${type.toLowerCase()}_${this.counter}_${i}`,
    );
    this.counter++;
    this.nodes.push({ opType: type, domain, input: inputs, output: outs, attribute: attributes(attrs) });
    return outs;
  }

  /** x converted to another element type. */
  cast(x: string, to: ElemType): string {
    return this.op('Cast', [x], { to: ELEM[to] });
  }

  // Shorthands for the ops the model builders use most.
  add = (a: string, b: string) => this.op('Add', [a, b]);
  sub = (a: string, b: string) => this.op('Sub', [a, b]);
  mul = (a: string, b: string) => this.op('Mul', [a, b]);
  matmul = (a: string, b: string) => this.op('MatMul', [a, b]);
  reshape = (x: string, shape: number[]) => this.op('Reshape', [x, this.ints(shape)]);
  transpose = (x: string, perm: number[]) => this.op('Transpose', [x], { perm });
  gather = (data: string, indices: string, axis = 0) => this.op('Gather', [data, indices], { axis });
  concat = (xs: string[], axis: number) => this.op('Concat', xs, { axis });
  slice = (x: string, starts: number[], ends: number[], axes: number[]) =>
    this.op('Slice', [x, this.ints(starts), this.ints(ends), this.ints(axes)]);
  unsqueeze = (x: string, axes: number[]) => this.op('Unsqueeze', [x, this.ints(axes)]);

  /** Serialises the model (opset 17, IR 8); the weights stay in their buffers, or are made when asked for. */
  encode(name = 'versa'): BuiltGraph {
    const rename = (v: string) => this.renames.get(v) ?? v;
    const nodes = this.nodes.map((n) => ({ ...n, input: n.input!.map(rename), output: n.output!.map(rename) }));
    const contrib = nodes.some((n) => n.domain === CONTRIB);
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'versa',
      opsetImport: [{ domain: '', version: 17 }, ...(contrib ? [{ domain: CONTRIB, version: 1 }] : [])],
      graph: { name, node: nodes, input: this.inputs, output: this.outputs, initializer: this.initializers },
    });
    return new BuiltGraph(onnx.ModelProto.encode(model).finish(), this.external);
  }
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

function attributes(attrs: Record<string, AttrValue>): onnxProto.onnx.IAttributeProto[] {
  return Object.entries(attrs).map(([name, v]) => {
    if (Array.isArray(v)) return { name, type: AT.INTS, ints: v };
    if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
    if (typeof v === 'object') return { name, type: AT.FLOAT, f: v.float };
    return Number.isInteger(v) ? { name, type: AT.INT, i: v } : { name, type: AT.FLOAT, f: v };
  });
}
