import { buildResnet50Ms3840, PROFILES } from '@yoco/models';
import { decodeModel } from '@yoco/onnx';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';

describe('resnet50-ms3840', () => {
  it('is ResNet50 (53 convs), seeded, and gives four unit-norm stage vectors: 3840 floats', async () => {
    const bytes = buildResnet50Ms3840(1);
    const model = decodeModel(bytes);
    expect(model.graph!.node!.filter((n) => n.opType === 'Conv')).toHaveLength(53);
    expect(Buffer.compare(Buffer.from(bytes), Buffer.from(buildResnet50Ms3840(1)))).toBe(0);
    expect(Buffer.compare(Buffer.from(bytes), Buffer.from(buildResnet50Ms3840(2)))).not.toBe(0);
    const session = await InferenceSession.create(bytes, { intraOpNumThreads: 2 });
    const x = new Float32Array(2 * 3 * 224 * 224).map((_, i) => Math.sin(i * 0.013) + (i > 3 * 224 * 224 ? 0.5 : 0));
    const r = await session.run({ image: new Tensor('float32', x, [2, 3, 224, 224]) });
    const e = r[PROFILES['resnet50-ms3840'].output];
    expect(e.dims).toEqual([2, 3840]);
    const v = e.data as Float32Array;
    for (let b = 0; b < 2; b++) {
      for (const [a, z] of [[0, 256], [256, 768], [768, 1792], [1792, 3840]]) {
        expect(Math.hypot(...v.subarray(b * 3840 + a, b * 3840 + z))).toBeCloseTo(1, 4);
      }
    }
    expect(Math.abs(v[0] - v[3840])).toBeGreaterThan(0);
    await session.release();
  });
});
