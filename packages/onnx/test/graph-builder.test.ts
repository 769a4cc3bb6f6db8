import { decodeModel, GraphBuilder, opsetOf, readFloatTensor, rewriteModel, valueDims } from '@yoco/onnx';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';

function affine(): Uint8Array {
  const g = new GraphBuilder('affine');
  const x = g.input('x', ['n', 3]);
  const w = g.initializer('w', new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
  const y = g.op('MatMul', [x, w], {}, { output: 'y' });
  const z = g.op('Add', [y, g.initializer('b', [0.5, -0.5], [2])], {}, { output: 'z' });
  g.output(g.op('Relu', [z], {}, { output: 'out' }), ['n', 2]);
  return g.toBytes({ opset: 15 });
}

describe('GraphBuilder', () => {
  it('writes a model that ONNX Runtime runs and our reader reads back', async () => {
    const bytes = affine();
    const model = decodeModel(bytes);
    expect(opsetOf(model)).toBe(15);
    expect(valueDims(model.graph!.input![0])).toEqual([-1, 3]);
    expect(Array.from(readFloatTensor(model.graph!.initializer![0]).data)).toEqual([1, 2, 3, 4, 5, 6]);
    const s = await InferenceSession.create(bytes);
    const r = await s.run({ x: new Tensor('float32', new Float32Array([1, 0, -1, 0, 0, 0]), [2, 3]) });
    // [1,0,-1]·w = [1-5, 2-6] = [-4, -4] + b -> relu -> 0; zeros -> b -> [0.5, 0]
    expect(Array.from(r.out.data as Float32Array)).toEqual([0, 0, 0.5, 0]);
    await s.release();
  });

  it('rejects a name used twice and weights of the wrong size', () => {
    const g = new GraphBuilder('dup');
    g.input('x', [1]);
    expect(() => g.input('x', [1])).toThrow(/already has a value named 'x'/);
    expect(() => g.initializer('w', new Float32Array(5), [2, 3])).toThrow(/5 values for dims \[2,3\]/);
  });

  it('rewriteModel exposes an inner value and drops what it does not need', async () => {
    const bytes = rewriteModel(affine(), { outputs: ['z'] });
    const model = decodeModel(bytes);
    expect(model.graph!.node!.map((n) => n.opType)).toEqual(['MatMul', 'Add']);
    const s = await InferenceSession.create(bytes);
    const r = await s.run({ x: new Tensor('float32', new Float32Array([1, 0, -1]), [1, 3]) });
    expect(Array.from(r.z.data as Float32Array)).toEqual([-3.5, -4.5]);
    await s.release();
  });
});
