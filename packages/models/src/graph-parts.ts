import type { GraphBuilder } from '@yoco/onnx';

/** TensorFlow filters [kh, kw, in, out] -> ONNX Conv weights [out, in, kh, kw]. */
export function hwioToOihw(data: Float32Array, [kh, kw, cin, cout]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = data[((y * kw + x) * cin + i) * cout + o];
  return out;
}

export interface ConvSpec {
  /** [out, in, kh, kw] */
  weight: Float32Array;
  bias: Float32Array;
  shape: [number, number, number, number];
  stride: number;
  /** Symmetric padding on H and W. */
  pad: number;
}

export function conv(g: GraphBuilder, x: string, spec: ConvSpec, name: string): string {
  const [, , kh, kw] = spec.shape;
  const w = g.initializer(`${name}.weight`, spec.weight, spec.shape);
  const b = g.initializer(`${name}.bias`, spec.bias, [spec.shape[0]]);
  return g.op('Conv', [x, w, b], { kernel_shape: [kh, kw], strides: [spec.stride, spec.stride], pads: [spec.pad, spec.pad, spec.pad, spec.pad] }, { name });
}

export function relu(g: GraphBuilder, x: string): string {
  return g.op('Relu', [x]);
}

/** [N, C, H, W] -> [N, C] mean over H and W. */
export function globalAverage(g: GraphBuilder, x: string): string {
  return g.op('ReduceMean', [x], { axes: [2, 3], keepdims: 0 });
}

/** Rows scaled to unit L2 norm (eps keeps an all-zero row at zero). */
export function l2Normalize(g: GraphBuilder, x: string, name: string): string {
  const sumSq = g.op('ReduceSumSquare', [x], { axes: [1], keepdims: 1 });
  const norm = g.op('Sqrt', [g.op('Add', [sumSq, g.initializer(`${name}.eps`, [1e-12], [1])])]);
  return g.op('Div', [x, norm]);
}
