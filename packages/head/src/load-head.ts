import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  attributeFloat,
  attributeInt,
  attributeInts,
  decodeModel,
  opsetOf,
  readFloatTensor,
  valueDims,
  type FloatTensor,
  type ModelProto,
  type NodeProto,
} from '@yoco/onnx';
import { HeadFormatError } from './errors/index.js';
import type { Head } from './head.js';

/** Ops that pass values through unchanged (at inference) and may sit anywhere in the chain. */
const PASS_THROUGH = new Set(['Identity', 'Dropout']);
/** Ops that only reshape C2's single output per pair; allowed after C2. */
const SHAPE_ONLY = new Set(['Squeeze', 'Unsqueeze', 'Flatten', 'Reshape', 'Identity', 'Dropout']);

const MIN_OPSET = 13;
const MAX_OPSET = 17;

interface Linear {
  /** out x in, row-major. */
  weight: Float32Array;
  bias: Float32Array;
  out: number;
  in: number;
  /** The value holding the layer's output (after its bias). */
  output: string;
  kind: 'conv' | 'dense';
}

function nodeLabel(node: NodeProto): string {
  return `node '${node.name || '(unnamed)'}' (${node.opType})`;
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** Walks the model's graph as one chain from the pair input to the score output. */
class ChainReader {
  /** Constant values by name, read on first use: int64 shape tensors never need reading. */
  private readonly constants = new Map<string, () => FloatTensor>();
  private readonly cache = new Map<string, FloatTensor>();
  private readonly consumers = new Map<string, NodeProto[]>();
  private readonly visited = new Set<NodeProto>();

  constructor(private readonly model: ModelProto) {
    const graph = model.graph!;
    for (const t of graph.initializer ?? []) this.constants.set(t.name ?? '', () => readFloatTensor(t));
    for (const node of graph.node ?? []) {
      if (node.opType === 'Constant') {
        for (const o of node.output ?? []) this.constants.set(o, () => constantNodeValue(node));
        this.visited.add(node);
        continue;
      }
      for (const i of node.input ?? []) {
        if (!i) continue;
        const list = this.consumers.get(i) ?? [];
        list.push(node);
        this.consumers.set(i, list);
      }
    }
  }

  isConstant(name: string): boolean {
    return this.constants.has(name);
  }

  constant(name: string, node: NodeProto): FloatTensor {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const read = this.constants.get(name);
    if (!read) throw new HeadFormatError(`input '${name}' must be a constant weight, not a computed value`, nodeLabel(node));
    const t = read();
    this.cache.set(name, t);
    return t;
  }

  /** The single non-pass-through node consuming `value`, or null at the end of the chain. */
  next(value: string): { node: NodeProto | null; value: string } {
    let current = value;
    for (;;) {
      const users = this.consumers.get(current) ?? [];
      if (users.length === 0) return { node: null, value: current };
      if (users.length > 1) {
        throw new HeadFormatError(`value '${current}' feeds ${users.length} nodes; a head is one chain`, nodeLabel(users[1]));
      }
      const node = users[0];
      this.visited.add(node);
      if (PASS_THROUGH.has(node.opType ?? '') && (node.output ?? []).length >= 1) {
        current = node.output![0];
        continue;
      }
      return { node, value: current };
    }
  }

  markVisited(node: NodeProto): void {
    this.visited.add(node);
  }

  unvisited(): NodeProto | undefined {
    return (this.model.graph!.node ?? []).find((n) => !this.visited.has(n));
  }
}

function constantNodeValue(node: NodeProto): FloatTensor {
  const attr = (node.attribute ?? []).find((a) => a.name === 'value');
  if (!attr?.t) throw new HeadFormatError('Constant has no tensor value', nodeLabel(node));
  return readFloatTensor(attr.t);
}

function requireUnit(node: NodeProto, attr: string, value: number[] | undefined, unit: number): void {
  if (value && value.some((v) => v !== unit)) {
    throw new HeadFormatError(`${attr}=[${value}] is not supported; a head's convolutions are 1x1 with ${attr} ${unit}`, nodeLabel(node));
  }
}

function readConv(chain: ChainReader, node: NodeProto, input: string): Linear {
  const inputs = node.input ?? [];
  if (inputs[0] !== input) throw new HeadFormatError('the pair must be the Conv data input', nodeLabel(node));
  const w = chain.constant(inputs[1], node);
  if (w.dims.length !== 3 || w.dims[2] !== 1) {
    throw new HeadFormatError(`Conv weight has shape [${w.dims}], expected [out, in, 1] (kernel size 1)`, nodeLabel(node));
  }
  requireUnit(node, 'kernel_shape', attributeInts(node, 'kernel_shape'), 1);
  requireUnit(node, 'strides', attributeInts(node, 'strides'), 1);
  requireUnit(node, 'dilations', attributeInts(node, 'dilations'), 1);
  requireUnit(node, 'pads', attributeInts(node, 'pads'), 0);
  if (attributeInt(node, 'group', 1) !== 1) throw new HeadFormatError('grouped convolution is not supported', nodeLabel(node));
  const [out, inn] = w.dims;
  const bias = inputs[2] ? chain.constant(inputs[2], node).data : new Float32Array(out);
  if (bias.length !== out) throw new HeadFormatError(`Conv bias has ${bias.length} values, expected ${out}`, nodeLabel(node));
  return { weight: w.data, bias, out, in: inn, output: node.output![0], kind: 'conv' };
}

function readGemm(chain: ChainReader, node: NodeProto, input: string): Linear {
  const inputs = node.input ?? [];
  if (inputs[0] !== input) throw new HeadFormatError('the pair must be Gemm input A', nodeLabel(node));
  if (attributeInt(node, 'transA', 0) !== 0) throw new HeadFormatError('transA=1 is not supported', nodeLabel(node));
  const w = chain.constant(inputs[1], node);
  if (w.dims.length !== 2) throw new HeadFormatError(`Gemm weight has shape [${w.dims}], expected 2-D`, nodeLabel(node));
  const transB = attributeInt(node, 'transB', 0) === 1;
  const alpha = attributeFloat(node, 'alpha', 1);
  const beta = attributeFloat(node, 'beta', 1);
  const [out, inn] = transB ? w.dims : [w.dims[1], w.dims[0]];
  const weight = transB ? Float32Array.from(w.data) : transpose(w.data, w.dims[0], w.dims[1]);
  if (alpha !== 1) for (let i = 0; i < weight.length; i++) weight[i] *= alpha;
  let bias = new Float32Array(out);
  if (inputs[2]) {
    const c = chain.constant(inputs[2], node).data;
    if (c.length === out) bias = Float32Array.from(c, (v) => v * beta);
    else if (c.length === 1) bias.fill(c[0] * beta);
    else throw new HeadFormatError(`Gemm bias has ${c.length} values, expected ${out}`, nodeLabel(node));
  }
  return { weight, bias, out, in: inn, output: node.output![0], kind: 'dense' };
}

/** MatMul by a constant, optionally followed by Add of a constant bias (how Keras Dense and nn.Linear on 3-D inputs export). */
function readMatMul(chain: ChainReader, node: NodeProto, input: string): Linear {
  const inputs = node.input ?? [];
  if (inputs[0] !== input) throw new HeadFormatError('the pair must be the left MatMul operand', nodeLabel(node));
  const w = chain.constant(inputs[1], node);
  if (w.dims.length !== 2) throw new HeadFormatError(`MatMul weight has shape [${w.dims}], expected 2-D [in, out]`, nodeLabel(node));
  const [inn, out] = w.dims;
  const weight = transpose(w.data, inn, out);
  let output = node.output![0];
  let bias = new Float32Array(out);
  const after = chain.next(output);
  if (after.node?.opType === 'Add') {
    const add = after.node;
    const other = (add.input ?? []).find((i) => i !== after.value);
    if (other !== undefined && chain.isConstant(other)) {
      const c = chain.constant(other, add).data;
      if (c.length === out) bias = Float32Array.from(c);
      else if (c.length === 1) bias.fill(c[0]);
      else throw new HeadFormatError(`bias has ${c.length} values, expected ${out}`, nodeLabel(add));
      output = add.output![0];
    }
  }
  return { weight, bias, out, in: inn, output, kind: 'dense' };
}

function readLinear(chain: ChainReader, node: NodeProto, input: string, which: string): Linear {
  switch (node.opType) {
    case 'Conv':
      return readConv(chain, node, input);
    case 'Gemm':
      return readGemm(chain, node, input);
    case 'MatMul':
      return readMatMul(chain, node, input);
    default:
      throw new HeadFormatError(`expected the ${which} layer (Conv, Gemm or MatMul), found ${node.opType}`, nodeLabel(node));
  }
}

/**
 * Parses ONNX bytes into a Head. Accepts conv heads ([B, 2D, N] -> Conv k=1
 * -> Relu -> Conv k=1 -> [Sigmoid]) and dense heads ([N, 2D] -> Gemm or
 * MatMul+Add -> Relu -> same -> [Sigmoid]), opsets 13-17.
 */
export function parseHead(bytes: Uint8Array): Head {
  const model = decodeModel(bytes);
  const graph = model.graph!;
  const opset = opsetOf(model);
  if (opset < MIN_OPSET || opset > MAX_OPSET) {
    throw new HeadFormatError(`opset ${opset} is not supported; export with an opset from ${MIN_OPSET} to ${MAX_OPSET}`);
  }
  const initNames = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !initNames.has(i.name));
  if (inputs.length !== 1) {
    throw new HeadFormatError(`a head has exactly one input (the pair), this model has ${inputs.length}: ${inputs.map((i) => i.name).join(', ')}`);
  }
  if ((graph.output ?? []).length !== 1) throw new HeadFormatError(`a head has exactly one output, this model has ${(graph.output ?? []).length}`);
  const input = inputs[0];
  const inputName = input.name ?? '';
  const dims = valueDims(input);
  const chain = new ChainReader(model);

  let step = chain.next(inputName);
  if (!step.node) throw new HeadFormatError(`input '${inputName}' feeds no node`);
  const c1 = readLinear(chain, step.node, step.value, 'first');

  step = chain.next(c1.output);
  if (!step.node || step.node.opType !== 'Relu') {
    throw new HeadFormatError('the first layer must be followed by Relu', step.node ? nodeLabel(step.node) : `value '${c1.output}'`);
  }
  const relu = step.node;
  step = chain.next(relu.output![0]);
  if (!step.node) throw new HeadFormatError('the head ends after Relu; expected a second layer with one output', nodeLabel(relu));
  const c2 = readLinear(chain, step.node, step.value, 'second');

  const after = chain.next(c2.output).node;
  if (after?.opType === 'Relu') {
    throw new HeadFormatError('the head has more than two layers; only Linear -> Relu -> Linear -> [Sigmoid] compiles', nodeLabel(after));
  }
  if (c2.kind !== c1.kind) throw new HeadFormatError(`the layers mix ${c1.kind} and ${c2.kind} forms`, nodeLabel(step.node));
  if (c2.out !== 1) throw new HeadFormatError(`the second layer has ${c2.out} outputs; a head emits one score per pair`, nodeLabel(step.node));
  if (c2.in !== c1.out) throw new HeadFormatError(`the second layer takes ${c2.in} inputs but the first emits ${c1.out}`, nodeLabel(step.node));
  if (c1.in % 2 !== 0) {
    throw new HeadFormatError(`the pair input is ${c1.in} wide, which is odd; it must be concat(q, g) of two D-wide vectors`, `input '${inputName}'`);
  }

  // After C2: an optional Sigmoid and reshapes, then the graph output. Anything else (another Relu, a third layer) is not our form.
  let sig = false;
  let value = c2.output;
  for (;;) {
    step = chain.next(value);
    if (!step.node) break;
    const op = step.node.opType ?? '';
    if (op === 'Sigmoid' && !sig) sig = true;
    else if (!SHAPE_ONLY.has(op)) {
      throw new HeadFormatError(`unexpected ${op} after the second layer; only a Sigmoid and reshapes may follow it`, nodeLabel(step.node));
    }
    value = step.node.output![0];
  }
  if (value !== graph.output![0].name) throw new HeadFormatError(`the chain ends in '${value}', not in the graph output '${graph.output![0].name}'`);
  const stray = chain.unvisited();
  if (stray && !(stray.input ?? []).every((i) => !i || chain.isConstant(i))) {
    throw new HeadFormatError('node is not part of the head chain', nodeLabel(stray));
  }

  const rank = dims.length;
  if (c1.kind === 'conv' ? rank !== 3 : rank !== 2 && rank !== 3) {
    throw new HeadFormatError(`the pair input has rank ${rank}; expected ${c1.kind === 'conv' ? '3 ([B, 2D, N])' : '2 ([N, 2D]) or 3'}`, `input '${inputName}'`);
  }
  const width = c1.kind === 'conv' ? dims[1] : dims[rank - 1];
  if (width !== -1 && width !== c1.in) {
    throw new HeadFormatError(`the pair input is declared ${width} wide but the first layer takes ${c1.in}`, `input '${inputName}'`);
  }

  return {
    dim: c1.in / 2,
    hidden: c1.out,
    form: c1.kind,
    w1: c1.weight,
    b1: c1.bias,
    w2: c2.weight,
    b2: c2.bias[0],
    sigmoid: sig,
    opset,
    bytes,
    id: createHash('sha256').update(bytes).digest('hex').slice(0, 16),
    graph: { inputName, inputRank: rank, logitName: c2.output },
  };
}

/** Loads a head from a file path or from ONNX bytes. */
export async function loadHead(source: string | Uint8Array): Promise<Head> {
  const bytes = typeof source === 'string' ? new Uint8Array(await readFile(source)) : source;
  return parseHead(bytes);
}
