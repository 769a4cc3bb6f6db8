import { onnx, type AttributeProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';

export type Dim = number | string;
export type AttributeValue = number | string | number[] | Float32Array;
export type ElementType = 'float' | 'int64';

export interface ModelOptions {
  /** Default-domain opset; 17 unless told. */
  opset?: number;
  producer?: string;
  docString?: string;
}

const ELEMENT: Record<ElementType, number> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
};

function valueInfo(name: string, type: ElementType, dims: Dim[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEMENT[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, value: AttributeValue, floatHint: boolean): AttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    return floatHint || !Number.isInteger(value) ? { name, type: T.FLOAT, f: value } : { name, type: T.INT, i: value };
  }
  if (value instanceof Float32Array || floatHint) return { name, type: T.FLOATS, floats: Array.from(value) };
  return { name, type: T.INTS, ints: value };
}

/**
 * Builds an ONNX graph from TypeScript. Initializers are stored as raw_data,
 * so multi-megabyte weights cost one copy, not one protobuf field per float.
 */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name = 'graph') {}

  input(name: string, dims: Dim[], type: ElementType = 'float'): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, dims: Dim[], type: ElementType = 'float'): string {
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Adds a constant tensor; `data` is copied. */
  initializer(name: string, data: Float32Array | BigInt64Array | number[], dims: number[]): string {
    this.claim(name);
    const count = dims.reduce((a, b) => a * b, 1);
    const isInt = data instanceof BigInt64Array;
    if (data.length !== count) throw new RangeError(`initializer '${name}': ${data.length} values for dims [${dims}]`);
    const typed = isInt ? data : data instanceof Float32Array ? data : Float32Array.from(data);
    const raw = new Uint8Array(typed.byteLength);
    raw.set(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength));
    this.initializers.push({ name, dims, dataType: isInt ? ELEMENT.int64 : ELEMENT.float, rawData: raw });
    return name;
  }

  /** int64 constant, for Reshape shapes and similar. */
  ints(name: string, values: number[]): string {
    return this.initializer(name, BigInt64Array.from(values.map(BigInt)), [values.length]);
  }

  /**
   * Adds a node. `floatAttributes` names attributes that must be stored as
   * FLOAT/FLOATS even when their value happens to be a whole number.
   */
  node(
    opType: string,
    inputs: string[],
    outputs: string[] | number = 1,
    attributes: Record<string, AttributeValue> = {},
    options: { name?: string; floatAttributes?: string[] } = {},
  ): string[] {
    const name = options.name ?? `${opType}_${this.counter++}`;
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, i) => `${name}_out${i}`) : outputs;
    const floats = new Set(options.floatAttributes ?? []);
    this.nodes.push({
      name,
      opType,
      input: inputs,
      output: outs,
      attribute: Object.entries(attributes).map(([k, v]) => attribute(k, v, floats.has(k))),
    });
    return outs;
  }

  /** Shorthand for a single-output node. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, options: { name?: string; output?: string; floatAttributes?: string[] } = {}): string {
    const outs = this.node(opType, inputs, options.output ? [options.output] : 1, attributes, options);
    return outs[0];
  }

  toBytes(options: ModelOptions = {}): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: options.producer ?? 'yoco',
      docString: options.docString ?? '',
      opsetImport: [{ domain: '', version: options.opset ?? 17 }],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new RangeError(`graph '${this.name}' already has a value named '${name}'`);
    this.names.add(name);
  }
}
