import { GraphBuilder } from '@yoco/onnx';
import { hwioToOihw } from './graph-parts.js';
import type { NamedWeight } from './tfjs-weights.js';

type Weights = Map<string, NamedWeight>;

function getter(weights: Weights, what: string) {
  return (name: string): NamedWeight => {
    const w = weights.get(name);
    if (!w) throw new Error(`${what} weights lack '${name}'`);
    return w;
  };
}

/** TensorFlow's 'same' padding puts the odd pixel at the end, as ONNX's SAME_UPPER does. */
const SAME = { auto_pad: 'SAME_UPPER' } as const;

/** A plain conv from TF filters [kh, kw, in, out] plus bias. */
function tfConv(g: GraphBuilder, x: string, get: (n: string) => NamedWeight, prefix: string, stride: number, pad: 'same' | 'valid'): string {
  const f = get(`${prefix}/filters`);
  const [kh, kw, cin, cout] = f.shape;
  const w = g.initializer(`${prefix}.w`, hwioToOihw(f.data, f.shape), [cout, cin, kh, kw]);
  const b = g.initializer(`${prefix}.b`, get(`${prefix}/bias`).data, [cout]);
  return g.op('Conv', [x, w, b], { kernel_shape: [kh, kw], strides: [stride, stride], ...(pad === 'same' ? SAME : { pads: [0, 0, 0, 0] }) });
}

/**
 * tf.separableConv2d + bias: a depthwise conv (one group per channel, strided)
 * then a 1x1 pointwise conv that carries the bias. `pad` is 'same' or an
 * explicit symmetric padding (the tiny detector pads by 1 and convolves 'valid').
 */
function separable(g: GraphBuilder, x: string, get: (n: string) => NamedWeight, prefix: string, stride: number, pad: 'same' | 1): string {
  const dw = get(`${prefix}/depthwise_filter`);
  const [kh, kw, c] = dw.shape;
  // TF depthwise [kh, kw, C, 1] -> ONNX grouped [C, 1, kh, kw].
  const dwData = new Float32Array(c * kh * kw);
  for (let y = 0; y < kh; y++) for (let xx = 0; xx < kw; xx++) for (let i = 0; i < c; i++) dwData[(i * kh + y) * kw + xx] = dw.data[(y * kw + xx) * c + i];
  const pw = get(`${prefix}/pointwise_filter`);
  const cout = pw.shape[3];
  const depth = g.op('Conv', [x, g.initializer(`${prefix}.dw`, dwData, [c, 1, kh, kw])], {
    kernel_shape: [kh, kw],
    strides: [stride, stride],
    group: c,
    ...(pad === 'same' ? SAME : { pads: [1, 1, 1, 1] }),
  });
  return g.op('Conv', [depth, g.initializer(`${prefix}.pw`, hwioToOihw(pw.data, pw.shape), [cout, c, 1, 1]), g.initializer(`${prefix}.b`, get(`${prefix}/bias`).data, [cout])], { kernel_shape: [1, 1] });
}

/**
 * face-api's TinyFaceDetector (a tiny YOLOv2 with separable convs, 5 anchors)
 * rebuilt from its weights, mirroring src/tinyYolov2/TinyYolov2Base.runMobilenet.
 * Input: [1, 3, S, S] with S a multiple of 32, (rgb - meanRgb) / 255. Output:
 * [1, 25, S/32, S/32], per cell and anchor (x, y, w, h, score) before the sigmoid/exp.
 */
export function buildTinyFaceDetectorOnnx(weights: Weights): Uint8Array {
  const get = getter(weights, 'tiny face detector');
  const g = new GraphBuilder('tiny_face_detector');
  const input = g.input('image', [1, 3, 'h', 'w']);
  const leaky = (x: string) => g.op('LeakyRelu', [x], { alpha: 0.1 }, { floatAttributes: ['alpha'] });
  const pool = (x: string, stride: number) => g.op('MaxPool', [x], { kernel_shape: [2, 2], strides: [stride, stride], ...SAME });
  let x = pool(leaky(tfConv(g, input, get, 'conv0', 1, 'valid')), 2);
  for (const [name, stride] of [['conv1', 2], ['conv2', 2], ['conv3', 2], ['conv4', 2], ['conv5', 1]] as const) x = pool(leaky(separable(g, x, get, name, 1, 1)), stride);
  const out = g.op('Identity', [tfConv(g, x, get, 'conv8', 1, 'valid')], {}, { output: 'grid' });
  g.output(out, [1, 25, 'cells_h', 'cells_w']);
  return g.toBytes({ opset: 17, producer: 'yoco-models', docString: 'face-api TinyFaceDetector, rebuilt from @vladmandic/face-api weights' });
}

/**
 * face-api's FaceLandmark68Net (four dense blocks of separable convs, then a
 * fully connected layer), mirroring src/faceFeatureExtractor and FaceProcessor.
 * Input: [N, 3, 112, 112], (rgb - meanRgb) / 255. Output: [N, 136], x0 y0 x1 y1 ...
 * relative to the 112x112 input.
 */
export function buildFaceLandmark68Onnx(weights: Weights): Uint8Array {
  const get = getter(weights, 'face landmark 68');
  const g = new GraphBuilder('face_landmark_68');
  let x = g.input('face', ['n', 3, 112, 112]);
  const relu = (v: string) => g.op('Relu', [v]);
  const add = (a: string, b: string) => g.op('Add', [a, b]);
  for (let d = 0; d < 4; d++) {
    const p = `dense${d}`;
    const out1 = relu(d === 0 ? tfConv(g, x, get, `${p}/conv0`, 2, 'same') : separable(g, x, get, `${p}/conv0`, 2, 'same'));
    const out2 = separable(g, out1, get, `${p}/conv1`, 1, 'same');
    const out3 = separable(g, relu(add(out1, out2)), get, `${p}/conv2`, 1, 'same');
    const out4 = separable(g, relu(add(out1, add(out2, out3))), get, `${p}/conv3`, 1, 'same');
    x = relu(add(out1, add(out2, add(out3, out4))));
  }
  const pooled = g.op('AveragePool', [x], { kernel_shape: [7, 7], strides: [2, 2] });
  const flat = g.op('Flatten', [pooled], { axis: 1 });
  const fc = get('fc/weights');
  const out = g.op('Add', [g.op('MatMul', [flat, g.initializer('fc.w', fc.data, fc.shape)]), g.initializer('fc.b', get('fc/bias').data, [fc.shape[1]])], {}, { output: 'landmarks' });
  g.output(out, ['n', 136]);
  return g.toBytes({ opset: 17, producer: 'yoco-models', docString: 'face-api FaceLandmark68Net, rebuilt from @vladmandic/face-api weights' });
}
