import { Rng } from '@yoco/common';
import { afterAll, describe, expect, it } from 'vitest';
import { createScorer, type Scorer } from '@yoco/head';
import { ReluDotKernel } from '../src/kernel/relu-dot-kernel.js';
import { Int8Kernel } from '../src/kernel/int8-kernel.js';
import { PROJECT_MAX_QUERIES } from '../src/kernel/query-projection.js';
import { randomHead, randomRows } from './helpers.js';

/** u = A q in float64, A the first dim columns of W1 ([hidden, 2 dim]). */
function reference(w1: Float32Array, dim: number, hidden: number, q: Float32Array): Float64Array {
  return Float64Array.from({ length: hidden }, (_, h) => {
    let s = 0;
    for (let c = 0; c < dim; c++) s += w1[h * 2 * dim + c] * q[c];
    return s;
  });
}

const open: { close(): Promise<void> }[] = [];
afterAll(async () => {
  await Promise.all(open.map((k) => k.close()));
});

describe('the query projection in a scan kernel (u = A q on its memory and threads)', () => {
  it('gives A q, the same bits alone, in a batch, on one thread or two, in either kernel; rows after its region scan as before', async () => {
    // dim not a multiple of 16 (the padding must stay out of the sums), and the real size with two threads.
    for (const [dim, hidden] of [[37, 70], [3840, 512]] as const) {
      const rng = new Rng(dim);
      const w1 = rng.normals(hidden * 2 * dim, 1 / Math.sqrt(dim));
      const weights = { dim, hidden, w1 };
      const w2 = rng.normals(hidden, 1);
      const one = new ReluDotKernel(hidden, w2, 1, weights);
      const two = new ReluDotKernel(hidden, w2, 2, weights);
      const int8 = new Int8Kernel(hidden, 2, false, weights);
      open.push(one, two, int8);
      const nq = 7;
      const x = rng.normals(nq * dim, 1);
      const batch = two.project(x, nq);
      expect(batch).toHaveLength(nq * hidden);
      for (let k = 0; k < nq; k++) {
        const q = x.subarray(k * dim, (k + 1) * dim);
        const alone = one.project(q, 1);
        const want = reference(w1, dim, hidden, q);
        let worst = 0;
        for (let h = 0; h < hidden; h++) worst = Math.max(worst, Math.abs(alone[h] - want[h]) / (1 + Math.abs(want[h])));
        expect(worst).toBeLessThan(1e-5);
        expect(Array.from(two.project(q, 1))).toEqual(Array.from(alone));
        expect(Array.from(int8.project(q, 1))).toEqual(Array.from(alone));
        expect(Array.from(batch.subarray(k * hidden, (k + 1) * hidden))).toEqual(Array.from(alone));
      }
      expect(() => one.project(x, 0)).toThrow(RangeError);
      expect(() => one.project(new Float32Array((PROJECT_MAX_QUERIES + 1) * dim), PROJECT_MAX_QUERIES + 1)).toThrow(RangeError);
      expect(() => one.project(x.subarray(0, dim - 1), 1)).toThrow(RangeError);
      // The rows sit past the projection's region: what is appended scans as in a kernel without it.
      const plain = new ReluDotKernel(hidden, w2, 1);
      open.push(plain);
      const rows = rng.normals(50 * hidden, 1);
      for (const k of [one, plain]) k.append(rows, 50);
      const u = one.project(x.subarray(0, dim), 1);
      const [a, b] = [new Float32Array(50), new Float32Array(50)];
      one.run(u, a);
      plain.run(u, b);
      expect(a).toEqual(b);
      // Projecting again after rows were added (and the memory grew) still gives the same u.
      expect(Array.from(one.project(x.subarray(0, dim), 1))).toEqual(Array.from(u));
    }
  });

  it('the factorized and int8 engines project a query to the same u: their searches and batches give the same logits, bit for bit', async () => {
    const head = randomHead(48, 64, 3);
    const rows = randomRows(3000, 48, 4);
    const scorers: Scorer[] = [];
    for (const engine of ['factorized', 'int8'] as const) {
      const s = await createScorer(head, { engine, kernelThreads: 2, ...(engine === 'int8' ? { int8: { minRows: 1024 } } : {}) });
      open.push(s);
      s.add(rows);
      await s.flush();
      scorers.push(s);
    }
    const queries = Array.from({ length: 40 }, (_, i) => randomRows(1, 48, 100 + i));
    for (const q of queries) {
      const [f32, i8] = await Promise.all(scorers.map((s) => s.search(q, 10)));
      expect(i8).toEqual(f32);
    }
    const verify = await Promise.all(scorers.map((s) => s.logitsOf(queries[0], [0, 7, 2999])));
    expect(Array.from(verify[1])).toEqual(Array.from(verify[0]));
  });
});
