import { Rng } from '@yoco/common';
import { GraphBuilder } from '@yoco/onnx';
import { conv, globalAverage, l2Normalize, relu, type ConvSpec } from './graph-parts.js';

/** BatchNorm at torchvision's initialisation (gamma 1, beta 0, mean 0, var 1) folds into this scale. */
const BN_SCALE = 1 / Math.sqrt(1 + 1e-5);

/** A conv with torchvision's initialisation: kaiming normal, fan_out, relu; then BN folded in. */
function seededConv(rng: Rng, cout: number, cin: number, k: number, stride: number, pad: number): ConvSpec {
  const std = Math.sqrt(2 / (cout * k * k));
  const weight = rng.normals(cout * cin * k * k, std * BN_SCALE);
  return { weight, bias: new Float32Array(cout), shape: [cout, cin, k, k], stride, pad };
}

/**
 * The reference's backbone shape: ResNet50 (torchvision v1.5: stride on the
 * 3x3 conv) whose four stages are each global-average-pooled, L2-normalised
 * (the deep stages' activations are 10-50x larger and would swamp the
 * distance otherwise) and concatenated: 256 + 512 + 1024 + 2048 = 3840.
 * Weights are seeded, not trained: right for capacity tests, not for telling
 * people apart. Input: [N, 3, 224, 224], ImageNet-normalised RGB.
 */
export function buildResnet50Ms3840(seed = 1): Uint8Array {
  const rng = new Rng(seed);
  const g = new GraphBuilder('resnet50_ms3840');
  let x = g.input('image', ['n', 3, 224, 224]);
  x = relu(g, conv(g, x, seededConv(rng, 64, 3, 7, 2, 3), 'conv1'));
  x = g.op('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  let cin = 64;
  const pooled: string[] = [];
  const stages: [number, number, number][] = [
    [64, 3, 1],
    [128, 4, 2],
    [256, 6, 2],
    [512, 3, 2],
  ];
  stages.forEach(([width, blocks, stride], s) => {
    const cout = width * 4;
    for (let b = 0; b < blocks; b++) {
      const st = b === 0 ? stride : 1;
      const name = `layer${s + 1}.${b}`;
      let h = relu(g, conv(g, x, seededConv(rng, width, cin, 1, 1, 0), `${name}.conv1`));
      h = relu(g, conv(g, h, seededConv(rng, width, width, 3, st, 1), `${name}.conv2`));
      h = conv(g, h, seededConv(rng, cout, width, 1, 1, 0), `${name}.conv3`);
      const shortcut = b === 0 ? conv(g, x, seededConv(rng, cout, cin, 1, st, 0), `${name}.downsample`) : x;
      x = relu(g, g.op('Add', [h, shortcut]));
      cin = cout;
    }
    pooled.push(l2Normalize(g, globalAverage(g, x), `stage${s + 1}`));
  });
  const out = g.op('Concat', pooled, { axis: 1 }, { output: 'embedding' });
  g.output(out, ['n', 3840]);
  return g.toBytes({ opset: 17, producer: 'yoco-models', docString: `ResNet50, four stages pooled, L2-normalised and concatenated (3840); seeded weights (seed ${seed}), untrained` });
}
