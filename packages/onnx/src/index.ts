export { onnx } from './proto.js';
export type { ModelProto, GraphProto, NodeProto, TensorProto, AttributeProto, ValueInfoProto } from './proto.js';
export { OnnxDecodeError } from './errors/onnx-decode-error.js';
export {
  decodeModel,
  opsetOf,
  readFloatTensor,
  getAttribute,
  attributeInt,
  attributeInts,
  attributeFloat,
  valueDims,
  toNumber,
  type FloatTensor,
} from './read.js';
export { GraphBuilder, type Dim, type AttributeValue, type ElementType, type ModelOptions } from './graph-builder.js';
export { rewriteModel, type RewriteOptions } from './rewrite.js';
