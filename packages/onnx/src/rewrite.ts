import { decodeModel } from './read.js';
import { onnx, type ModelProto, type NodeProto } from './proto.js';

export interface RewriteOptions {
  /** The values to expose as the graph's only outputs (float tensors). */
  outputs: string[];
  /** Input dims to replace, by input name then axis: a string makes the axis symbolic. */
  inputDims?: Record<string, Record<number, number | string>>;
}

/**
 * A copy of the model that computes only `outputs`: nodes and initializers
 * nothing needs are dropped, so ORT runs exactly the requested part.
 */
export function rewriteModel(bytes: Uint8Array, options: RewriteOptions): Uint8Array {
  const model: ModelProto = decodeModel(bytes);
  const graph = model.graph!;
  const producer = new Map<string, NodeProto>();
  for (const node of graph.node ?? []) for (const o of node.output ?? []) producer.set(o, node);
  const needed = new Set<NodeProto>();
  const values = new Set<string>();
  const stack = [...options.outputs];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (values.has(v)) continue;
    values.add(v);
    const node = producer.get(v);
    if (node && !needed.has(node)) {
      needed.add(node);
      for (const i of node.input ?? []) if (i) stack.push(i);
    }
  }
  graph.node = (graph.node ?? []).filter((n) => needed.has(n));
  graph.initializer = (graph.initializer ?? []).filter((t) => values.has(t.name ?? ''));
  graph.input = (graph.input ?? []).filter((i) => values.has(i.name ?? ''));
  graph.valueInfo = [];
  graph.output = options.outputs.map((name) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }));
  for (const input of graph.input) {
    const replace = options.inputDims?.[input.name ?? ''];
    const dims = input.type?.tensorType?.shape?.dim;
    if (!replace || !dims) continue;
    for (const [axis, d] of Object.entries(replace)) {
      const i = Number(axis);
      if (i < dims.length) dims[i] = typeof d === 'number' ? { dimValue: d } : { dimParam: d };
    }
  }
  return onnx.ModelProto.encode(model).finish();
}
