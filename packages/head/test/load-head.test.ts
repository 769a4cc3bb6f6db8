import { readFileSync } from 'node:fs';
import { Rng } from '@yoco/common';
import { createScorer, GraphBuilder, headToOnnx, HeadFormatError, loadHead, metricHead, parseHead, type EngineName } from '@yoco/head';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { randomRows } from './helpers.js';

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname;
const torch = JSON.parse(readFileSync(fixture('torch-scores.json'), 'utf8')) as {
  dim: number;
  hidden: number;
  queries: number[][];
  gallery: number[][];
  heads: Record<string, number[][]>;
};
const ENGINES: EngineName[] = ['reference', 'yoco', 'factorized'];

/** Every engine's probability for every (query, row) pair. */
async function engineScores(bytesOrPath: string | Uint8Array, queries: number[][], gallery: Float32Array): Promise<Record<EngineName, number[][]>> {
  const head = await loadHead(bytesOrPath);
  const out = {} as Record<EngineName, number[][]>;
  for (const engine of ENGINES) {
    const s = await createScorer(head, { engine, blockSize: 7 });
    s.add(gallery);
    out[engine] = [];
    for (const q of queries) out[engine].push(Array.from(await s.logits(Float32Array.from(q)), (l) => 1 / (1 + Math.exp(-l))));
    await s.close();
  }
  return out;
}

function expectClose(got: number[][], want: number[][], tol: number): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    expect(got[i].length).toBe(want[i].length);
    for (let j = 0; j < want[i].length; j++) expect(Math.abs(got[i][j] - want[i][j])).toBeLessThanOrEqual(tol);
  }
}

describe('heads exported by PyTorch', () => {
  const gallery = Float32Array.from(torch.gallery.flat());
  for (const [name, want] of Object.entries(torch.heads)) {
    it(`${name} loads and every engine matches torch within 1e-5`, async () => {
      const head = await loadHead(fixture(name));
      expect(head.dim).toBe(torch.dim);
      expect(head.hidden).toBe(torch.hidden);
      expect(head.form).toBe(name.includes('conv') ? 'conv' : 'dense');
      expect(head.sigmoid).toBe(!name.includes('logit'));
      expect(head.opset).toBe(Number(/opset(\d+)/.exec(name)![1]));
      const got = await engineScores(fixture(name), torch.queries, gallery);
      for (const engine of ENGINES) expectClose(got[engine], want, 1e-5);
    });
  }

  it('a 3-layer head is refused, naming the node where it stops being ours', async () => {
    const err = await loadHead(fixture('torch-3layer-opset17.onnx')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HeadFormatError);
    expect((err as HeadFormatError).code).toBe('HEAD_FORMAT');
    expect((err as HeadFormatError).message).toMatch(/more than two layers/);
    expect((err as HeadFormatError).node).toMatch(/node '.*' \(Relu\)/);
  });
});

describe('a dense head in MatMul + Add form (as Keras Dense exports)', () => {
  it('loads and matches what ONNX Runtime computes from the file', async () => {
    const D = 9;
    const H = 7;
    const rng = new Rng(77);
    const g = new GraphBuilder('keras_like');
    const x = g.input('dense_input', ['unk__0', 2 * D]);
    let y = g.op('MatMul', [x, g.initializer('dense/kernel', rng.normals(2 * D * H, 0.4), [2 * D, H])]);
    y = g.op('Add', [y, g.initializer('dense/bias', rng.normals(H, 0.1), [H])]);
    y = g.op('Relu', [y]);
    y = g.op('MatMul', [y, g.initializer('dense_1/kernel', rng.normals(H, 0.5), [H, 1])]);
    y = g.op('Add', [g.initializer('dense_1/bias', [0.2], [1]), y]);
    const out = g.op('Sigmoid', [y], {}, { output: 'dense_1' });
    g.output(out, ['unk__0', 1]);
    const bytes = g.toBytes({ opset: 15 });

    const head = parseHead(bytes);
    expect([head.dim, head.hidden, head.form]).toEqual([D, H, 'dense']);

    const gallery = randomRows(30, D, 1);
    const queries = [Array.from(randomRows(1, D, 2)), Array.from(randomRows(1, D, 3))];
    const session = await InferenceSession.create(bytes);
    const want: number[][] = [];
    for (const q of queries) {
      const pairs = new Float32Array(30 * 2 * D);
      for (let i = 0; i < 30; i++) {
        pairs.set(q, i * 2 * D);
        pairs.set(gallery.subarray(i * D, (i + 1) * D), i * 2 * D + D);
      }
      const r = await session.run({ dense_input: new Tensor('float32', pairs, [30, 2 * D]) });
      want.push(Array.from(r.dense_1.data as Float32Array));
    }
    await session.release();
    const got = await engineScores(bytes, queries, gallery);
    for (const engine of ENGINES) expectClose(got[engine], want, 1e-5);
  });
});

describe('what loadHead refuses', () => {
  const weights = (dim: number, hidden: number) => ({
    dim,
    hidden,
    w1: new Float32Array(hidden * 2 * dim).fill(0.1),
    b1: new Float32Array(hidden),
    w2: new Float32Array(hidden).fill(1),
    b2: 0,
  });

  it('malformed bytes: a clear decode error', async () => {
    await expect(loadHead(new Uint8Array(0))).rejects.toMatchObject({ code: 'ONNX_DECODE', message: /empty/ });
    await expect(loadHead(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]))).rejects.toMatchObject({ code: 'ONNX_DECODE' });
    await expect(loadHead(new TextEncoder().encode('this is not a model at all'))).rejects.toMatchObject({ code: 'ONNX_DECODE' });
    const good = headToOnnx(weights(4, 3));
    await expect(loadHead(good.subarray(0, good.length - 40))).rejects.toMatchObject({ code: 'ONNX_DECODE' });
  });

  it('a missing file rejects with the path', async () => {
    await expect(loadHead('/nonexistent/head.onnx')).rejects.toThrow(/nonexistent\/head.onnx/);
  });

  it('an odd input width names the input', () => {
    const g = new GraphBuilder('odd');
    const x = g.input('pair', [1, 7, 'n']);
    const h = g.op('Relu', [g.op('Conv', [x, g.initializer('w1', new Float32Array(3 * 7), [3, 7, 1])])]);
    g.output(g.op('Conv', [h, g.initializer('w2', new Float32Array(3), [1, 3, 1])]), [1, 1, 'n']);
    expect(() => parseHead(g.toBytes())).toThrow(HeadFormatError);
    expect(() => parseHead(g.toBytes())).toThrow(/7 wide, which is odd.*input 'pair'/);
  });

  it('a kernel wider than 1, a second layer with several outputs, an unsupported opset', () => {
    const wide = new GraphBuilder('wide');
    const x = wide.input('pair', [1, 8, 'n']);
    const h = wide.op('Relu', [wide.op('Conv', [x, wide.initializer('w1', new Float32Array(3 * 8 * 3), [3, 8, 3])], {}, { name: 'C1' })]);
    wide.output(wide.op('Conv', [h, wide.initializer('w2', new Float32Array(3), [1, 3, 1])]), [1, 1, 'n']);
    expect(() => parseHead(wide.toBytes())).toThrow(/kernel size 1.*node 'C1' \(Conv\)/);

    const two = new GraphBuilder('two');
    const p = two.input('pair', ['n', 8]);
    const r = two.op('Relu', [two.op('Gemm', [p, two.initializer('w1', new Float32Array(24), [3, 8])], { transB: 1 })]);
    two.output(two.op('Gemm', [r, two.initializer('w2', new Float32Array(6), [2, 3])], { transB: 1 }, { name: 'C2' }), ['n', 2]);
    expect(() => parseHead(two.toBytes())).toThrow(/2 outputs.*node 'C2' \(Gemm\)/);

    expect(() => parseHead(headToOnnx(weights(4, 3), { opset: 11 }))).toThrow(/opset 11 is not supported/);
  });

  it('a computed (non-constant) weight and a missing Relu are named', () => {
    const g = new GraphBuilder('computed');
    const x = g.input('pair', ['n', 4]);
    const w = g.op('Identity', [g.initializer('w', new Float32Array(8), [2, 4])], {}, { name: 'make_w' });
    const h = g.op('Relu', [g.op('Gemm', [x, w], { transB: 1 }, { name: 'C1' })]);
    g.output(g.op('Gemm', [h, g.initializer('w2', new Float32Array(2), [1, 2])], { transB: 1 }), ['n', 1]);
    expect(() => parseHead(g.toBytes())).toThrow(/must be a constant weight.*node 'C1'/);

    const noRelu = new GraphBuilder('no_relu');
    const y = noRelu.input('pair', ['n', 4]);
    const lin = noRelu.op('Gemm', [y, noRelu.initializer('w1', new Float32Array(8), [2, 4])], { transB: 1 });
    noRelu.output(noRelu.op('Tanh', [lin], {}, { name: 'act' }), ['n', 2]);
    expect(() => parseHead(noRelu.toBytes())).toThrow(/followed by Relu.*node 'act' \(Tanh\)/);
  });

  it('the metric head round-trips through the writer and keeps its shape', () => {
    const head = metricHead({ dim: 32, hidden: 16, seed: 3 });
    const again = parseHead(head.bytes);
    expect(again.id).toBe(head.id);
    expect(Array.from(again.w1)).toEqual(Array.from(head.w1));
    expect(metricHead({ dim: 32, hidden: 16, seed: 4 }).id).not.toBe(head.id);
    expect(() => metricHead({ hidden: 5 })).toThrow(/even/);
  });
});
