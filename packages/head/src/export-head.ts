import { GraphBuilder } from '@yoco/onnx';
import type { Head } from './head.js';

export interface HeadExportOptions {
  /** conv: input [1, 2D, N] through 1x1 Conv (the reference's fig. 6); dense: input [N, 2D] through Gemm. */
  form?: 'conv' | 'dense';
  /** End in a Sigmoid (default true). */
  sigmoid?: boolean;
  opset?: number;
}

type HeadWeights = Pick<Head, 'dim' | 'hidden' | 'w1' | 'b1' | 'w2' | 'b2'>;

/** Writes a head's weights as an ONNX model in conv or dense form. */
export function headToOnnx(head: HeadWeights, options: HeadExportOptions = {}): Uint8Array {
  const form = options.form ?? 'conv';
  const { dim, hidden } = head;
  const g = new GraphBuilder(`yoco_head_${form}`);
  let x: string;
  if (form === 'conv') {
    const pair = g.input('pair', [1, 2 * dim, 'n']);
    const w1 = g.initializer('c1.weight', head.w1, [hidden, 2 * dim, 1]);
    const b1 = g.initializer('c1.bias', head.b1, [hidden]);
    const w2 = g.initializer('c2.weight', head.w2, [1, hidden, 1]);
    const b2 = g.initializer('c2.bias', [head.b2], [1]);
    const h = g.op('Relu', [g.op('Conv', [pair, w1, b1], { kernel_shape: [1] }, { name: 'C1' })], {}, { name: 'relu' });
    x = g.op('Conv', [h, w2, b2], { kernel_shape: [1] }, { name: 'C2', output: 'logit' });
  } else {
    const pair = g.input('pair', ['n', 2 * dim]);
    const w1 = g.initializer('fc1.weight', head.w1, [hidden, 2 * dim]);
    const b1 = g.initializer('fc1.bias', head.b1, [hidden]);
    const w2 = g.initializer('fc2.weight', head.w2, [1, hidden]);
    const b2 = g.initializer('fc2.bias', [head.b2], [1]);
    const h = g.op('Relu', [g.op('Gemm', [pair, w1, b1], { transB: 1 }, { name: 'C1' })], {}, { name: 'relu' });
    x = g.op('Gemm', [h, w2, b2], { transB: 1 }, { name: 'C2', output: 'logit' });
  }
  const sig = options.sigmoid ?? true;
  const out = sig ? g.op('Sigmoid', [x], {}, { name: 'sigmoid', output: 'score' }) : x;
  g.output(out, form === 'conv' ? [1, 1, 'n'] : ['n', 1]);
  return g.toBytes({ opset: options.opset ?? 17, producer: 'yoco-head' });
}
