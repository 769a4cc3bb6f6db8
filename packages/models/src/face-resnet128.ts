import { GraphBuilder } from '@yoco/onnx';
import { conv, globalAverage, hwioToOihw, relu, type ConvSpec } from './graph-parts.js';
import type { NamedWeight } from './tfjs-weights.js';

/**
 * face-api's FaceRecognitionNet (a ResNet-34-like network, 150x150 RGB in,
 * 128 floats out) rebuilt as an ONNX graph from its own weights. The graph
 * mirrors src/faceRecognitionNet of @vladmandic/face-api layer by layer; each
 * conv's bias and per-channel scale layer (x * w + b) are folded into the conv.
 * Input: [N, 3, 150, 150], already (rgb - meanRgb) / 255 as the profile says.
 */
export function buildFaceRecognitionOnnx(weights: Map<string, NamedWeight>): Uint8Array {
  const get = (name: string): NamedWeight => {
    const w = weights.get(name);
    if (!w) throw new Error(`face recognition weights lack '${name}'`);
    return w;
  };
  /** conv + bias, then scale (x * s + t), folded: W' = W * s, b' = b * s + t. */
  const spec = (prefix: string, stride: number, pad: number): ConvSpec => {
    const f = get(`${prefix}/conv/filters`);
    const b = get(`${prefix}/conv/bias`).data;
    const s = get(`${prefix}/scale/weights`).data;
    const t = get(`${prefix}/scale/biases`).data;
    const [kh, kw, cin, cout] = f.shape;
    const weight = hwioToOihw(f.data, f.shape);
    const per = cin * kh * kw;
    for (let o = 0; o < cout; o++) for (let i = 0; i < per; i++) weight[o * per + i] *= s[o];
    const bias = Float32Array.from(b, (v, o) => v * s[o] + t[o]);
    return { weight, bias, shape: [cout, cin, kh, kw], stride, pad };
  };

  const g = new GraphBuilder('face_resnet128');
  let x = g.input('image', ['n', 3, 150, 150]);
  let size = 150;
  let channels = 3;

  const residual = (name: string) => {
    const h = relu(g, conv(g, x, spec(`${name}/conv1`, 1, 1), `${name}.conv1`));
    const out = conv(g, h, spec(`${name}/conv2`, 1, 1), `${name}.conv2`);
    x = relu(g, g.op('Add', [out, x]));
  };

  const residualDown = (name: string) => {
    const c1 = spec(`${name}/conv1`, 2, 0);
    const outChannels = c1.shape[0];
    let out = conv(g, relu(g, conv(g, x, c1, `${name}.conv1`)), spec(`${name}/conv2`, 1, 1), `${name}.conv2`);
    const outSize = Math.floor((size - 3) / 2) + 1;
    const pooledSize = Math.floor(size / 2);
    // face-api pads the convolved branch with a zero row and column when the pooled shortcut is larger ...
    if (outSize !== pooledSize) out = g.op('Pad', [out, g.ints(`${name}.pad_hw`, [0, 0, 0, 0, 0, 0, pooledSize - outSize, pooledSize - outSize])], { mode: 'constant' });
    let pooled = g.op('AveragePool', [x], { kernel_shape: [2, 2], strides: [2, 2] });
    // ... and the shortcut with zero channels when the block widens.
    if (outChannels !== channels) pooled = g.op('Pad', [pooled, g.ints(`${name}.pad_c`, [0, 0, 0, 0, 0, outChannels - channels, 0, 0])], { mode: 'constant' });
    x = relu(g, g.op('Add', [pooled, out]));
    size = pooledSize;
    channels = outChannels;
  };

  x = relu(g, conv(g, x, spec('conv32_down', 2, 0), 'conv32_down'));
  size = Math.floor((size - 7) / 2) + 1;
  x = g.op('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2] });
  size = Math.floor((size - 3) / 2) + 1;
  channels = 32;
  for (const n of ['conv32_1', 'conv32_2', 'conv32_3']) residual(n);
  residualDown('conv64_down');
  for (const n of ['conv64_1', 'conv64_2', 'conv64_3']) residual(n);
  residualDown('conv128_down');
  for (const n of ['conv128_1', 'conv128_2']) residual(n);
  residualDown('conv256_down');
  for (const n of ['conv256_1', 'conv256_2']) residual(n);
  residualDown('conv256_down_out');
  const fc = get('fc');
  const out = g.op('MatMul', [globalAverage(g, x), g.initializer('fc', fc.data, fc.shape)], {}, { output: 'descriptor' });
  g.output(out, ['n', fc.shape[1]]);
  return g.toBytes({ opset: 17, producer: 'yoco-models', docString: 'face-api FaceRecognitionNet, rebuilt from @vladmandic/face-api weights' });
}
