import { OnnxDecodeError } from './errors/onnx-decode-error.js';
import { onnx, type AttributeProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';
import { getErrorMessage } from '@yoco/common';

/** int64 fields decode as Long objects (the `long` package is present) or plain numbers. */
export function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  if (bytes.length === 0) throw new OnnxDecodeError('empty input: no ONNX model bytes');
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new OnnxDecodeError(`not an ONNX model: ${getErrorMessage(err)}`, { cause: err });
  }
  // Protobuf happily decodes many random byte strings into an empty message.
  if (!model.graph || (model.graph.node ?? []).length === 0) {
    throw new OnnxDecodeError('not an ONNX model: no graph or no nodes');
  }
  return model;
}

/** The default-domain opset a model imports (0 when it names none). */
export function opsetOf(model: ModelProto): number {
  for (const o of model.opsetImport ?? []) {
    if (!o.domain || o.domain === 'ai.onnx') return toNumber(o.version);
  }
  return 0;
}

export interface FloatTensor {
  dims: number[];
  data: Float32Array;
}

/** Reads a FLOAT or DOUBLE tensor (raw_data or typed fields) into float32. */
export function readFloatTensor(t: TensorProto): FloatTensor {
  const dims = (t.dims ?? []).map(toNumber);
  const count = dims.reduce((a, b) => a * b, 1);
  const name = t.name ?? '(unnamed)';
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (t.externalData ?? []).length > 0) {
    throw new OnnxDecodeError(`tensor '${name}' keeps its data in an external file; save the model with its weights inline`);
  }
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : null;
  let data: Float32Array;
  switch (t.dataType) {
    case onnx.TensorProto.DataType.FLOAT:
      if (raw) {
        if (raw.length !== count * 4) throw new OnnxDecodeError(`tensor '${name}' holds ${raw.length} bytes, expected ${count * 4}`);
        // Copy: raw_data is a view into the model buffer and may be unaligned.
        data = new Float32Array(count);
        new Uint8Array(data.buffer).set(raw);
      } else {
        data = Float32Array.from(t.floatData ?? []);
      }
      break;
    case onnx.TensorProto.DataType.DOUBLE:
      if (raw) {
        if (raw.length !== count * 8) throw new OnnxDecodeError(`tensor '${name}' holds ${raw.length} bytes, expected ${count * 8}`);
        const f64 = new Float64Array(count);
        new Uint8Array(f64.buffer).set(raw);
        data = Float32Array.from(f64);
      } else {
        data = Float32Array.from(t.doubleData ?? []);
      }
      break;
    default:
      throw new OnnxDecodeError(`tensor '${name}' has element type ${t.dataType}; only FLOAT and DOUBLE weights are supported`);
  }
  if (data.length !== count) throw new OnnxDecodeError(`tensor '${name}' holds ${data.length} values, expected ${count}`);
  return { dims, data };
}

export function getAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return (node.attribute ?? []).find((a) => a.name === name);
}

export function attributeInts(node: NodeProto, name: string): number[] | undefined {
  const a = getAttribute(node, name);
  return a ? (a.ints ?? []).map(toNumber) : undefined;
}

export function attributeInt(node: NodeProto, name: string, fallback: number): number {
  const a = getAttribute(node, name);
  return a ? toNumber(a.i) : fallback;
}

export function attributeFloat(node: NodeProto, name: string, fallback: number): number {
  const a = getAttribute(node, name);
  return a ? (a.f ?? fallback) : fallback;
}

/** Static dims of a graph input/output; symbolic or unknown dims come back as -1. */
export function valueDims(v: ValueInfoProto): number[] {
  const shape = v.type?.tensorType?.shape;
  return (shape?.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null && !d.dimParam ? toNumber(d.dimValue) : -1));
}
