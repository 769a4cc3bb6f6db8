import { Rng } from '@yoco/common';
import { createScorer, metricHead, ReferenceScorer, type EngineName, type Head, type Scorer } from '@yoco/head';
import { afterEach, describe, expect, it } from 'vitest';
import { indices, maxAbsDiff, probabilities, randomHead, randomRows } from './helpers.js';

const open: Scorer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function scorers(head: Head, rows: Float32Array, engines: EngineName[], blockSize = 1000): Promise<Scorer[]> {
  const out: Scorer[] = [];
  for (const engine of engines) {
    const s = await createScorer(head, { engine, blockSize });
    open.push(s);
    if (rows.length > 0) s.add(rows);
    out.push(s);
  }
  return out;
}

/** Every engine gives the reference's probabilities (1e-5) and the same top-k. */
async function expectAgreement(all: Scorer[], queries: Float32Array[], k: number): Promise<void> {
  const [truth, ...others] = all;
  for (const q of queries) {
    const want = await truth.search(q, k);
    const wantP = probabilities(await truth.logits(q));
    for (const s of others) {
      const got = await s.search(q, k);
      expect(indices(got), `${s.engine} top-${k}`).toEqual(indices(want));
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i].score - want[i].score)).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(probabilities(await s.logits(q)), wantP), `${s.engine} probabilities`).toBeLessThanOrEqual(1e-5);
    }
  }
}

describe('engines agree with the per-pair reference', () => {
  for (const [dim, hidden] of [
    [4, 3],
    [8, 16],
    [33, 20],
  ]) {
    for (const n of [1, 7, 300, 5000]) {
      it(`D=${dim} H=${hidden} N=${n}`, async () => {
        const head = randomHead(dim, hidden, dim * 100 + hidden);
        const rows = randomRows(n, dim, n);
        const all = await scorers(head, rows, ['reference', 'yoco', 'factorized']);
        const queries = [randomRows(1, dim, 99), rows.slice(0, dim)];
        await expectAgreement(all, queries, 10);
      });
    }
  }

  it('dense-form heads run the same way', async () => {
    const head = randomHead(16, 8, 5, 'dense');
    expect(head.form).toBe('dense');
    const rows = randomRows(777, 16, 3);
    const all = await scorers(head, rows, ['reference', 'yoco', 'factorized'], 100);
    await expectAgreement(all, [randomRows(1, 16, 4)], 25);
  });

  it('D=3840 H=512: reference, yoco and factorized on 48 rows', async () => {
    const head = randomHead(3840, 512, 11);
    const rows = randomRows(48, 3840, 12);
    const all = await scorers(head, rows, ['reference', 'yoco', 'factorized']);
    await expectAgreement(all, [randomRows(1, 3840, 13)], 10);
  });

  it('D=3840 H=512: yoco (single pass and blocks) and factorized on 5000 rows, reference on a sample', async () => {
    const head = randomHead(3840, 512, 21);
    const rows = randomRows(5000, 3840, 22);
    const [single, factorized] = await scorers(head, rows, ['yoco', 'factorized'], Infinity);
    const [blocks] = await scorers(head, rows, ['yoco'], 1024);
    const q = randomRows(1, 3840, 23);
    await expectAgreement([single, blocks, factorized], [q], 10);
    const got = await factorized.logits(q);
    const rng = new Rng(24);
    for (let s = 0; s < 20; s++) {
      const i = rng.int(5000);
      const ref = ReferenceScorer.pairLogit(head, q, rows.subarray(i * 3840, (i + 1) * 3840));
      expect(Math.abs(probabilities([ref])[0] - probabilities([got[i]])[0])).toBeLessThanOrEqual(1e-5);
    }
  });

  it('the metric head: yoco and factorized agree with the reference at D=3840', async () => {
    const head = metricHead();
    expect([head.dim, head.hidden]).toEqual([3840, 512]);
    const rows = randomRows(40, 3840, 31).map((v) => v / Math.sqrt(3840));
    const all = await scorers(head, rows, ['reference', 'yoco', 'factorized']);
    await expectAgreement(all, [rows.slice(3 * 3840, 4 * 3840)], 10);
  });
});

describe('top-k semantics', () => {
  it('returns every row, best first, when N < k', async () => {
    const head = randomHead(8, 4, 1);
    const all = await scorers(head, randomRows(3, 8, 2), ['reference', 'yoco', 'factorized']);
    for (const s of all) {
      const got = await s.search(randomRows(1, 8, 3), 10);
      expect(got).toHaveLength(3);
      expect(got[0].score).toBeGreaterThanOrEqual(got[1].score);
      expect(got[1].score).toBeGreaterThanOrEqual(got[2].score);
    }
  });

  it('duplicate rows tie and are ordered by row index in every engine', async () => {
    const dim = 12;
    const head = randomHead(dim, 6, 3);
    const base = randomRows(50, dim, 4);
    // Rows 50..99 repeat 0..49: every score appears exactly twice.
    const rows = new Float32Array(100 * dim);
    rows.set(base);
    rows.set(base, 50 * dim);
    const all = await scorers(head, rows, ['reference', 'yoco', 'factorized'], 32);
    const q = randomRows(1, dim, 5);
    for (const s of all) {
      const got = await s.search(q, 20);
      for (let i = 0; i < 20; i += 2) {
        expect(got[i].index + 50, `${s.engine} pair ${i}`).toBe(got[i + 1].index);
        expect(got[i].score).toBe(got[i + 1].score);
      }
    }
    await expectAgreement(all, [q], 20);
  });

  it('with hidden = 2D the metric head measures the (scaled) L1 distance exactly', async () => {
    const dim = 24;
    const head = metricHead({ dim, hidden: 2 * dim, tau: 0.5, alpha: 3 });
    const rows = randomRows(50, dim, 9).map((v) => v / 5);
    const q = randomRows(1, dim, 10).map((v) => v / 5);
    const [s] = await scorers(head, rows, ['factorized']);
    const logits = await s.logits(q);
    const scale = Math.sqrt(Math.PI / (2 * dim));
    for (let i = 0; i < 50; i++) {
      let l1 = 0;
      for (let c = 0; c < dim; c++) l1 += Math.abs(q[c] - rows[i * dim + c]);
      expect(logits[i]).toBeCloseTo(3 * (0.5 - scale * l1), 4);
    }
  });

  it('a query equal to a row under the metric head ranks that row first with score near 1', async () => {
    const head = metricHead({ dim: 64, hidden: 32, tau: 1, alpha: 8 });
    const rows = randomRows(200, 64, 8).map((v) => v / 8);
    const [s] = await scorers(head, rows, ['factorized']);
    const got = await s.search(rows.slice(17 * 64, 18 * 64), 3);
    expect(got[0].index).toBe(17);
    expect(got[0].score).toBeGreaterThan(0.99);
    expect(got[1].score).toBeLessThan(got[0].score);
  });
});

describe('appending and removing rows', () => {
  it('keeps indices stable and never returns a removed row', async () => {
    const dim = 10;
    // The metric head ranks a row first for a query equal to it.
    const head = metricHead({ dim, hidden: 8 });
    const rows = randomRows(400, dim, 42);
    const all = await scorers(head, new Float32Array(0), ['reference', 'yoco', 'factorized'], 64);
    const q = rows.slice(123 * dim, 124 * dim);
    for (const s of all) {
      expect(s.add(rows.subarray(0, 250 * dim))).toBe(0);
      expect(s.add(rows.subarray(250 * dim))).toBe(250);
      expect((await s.search(q, 1))[0].index).toBe(123);
      s.remove(123);
      expect(s.live).toBe(399);
      expect(s.size).toBe(400);
      expect(indices(await s.search(q, 400))).not.toContain(123);
      expect(Number.isNaN((await s.logits(q))[123])).toBe(true);
      expect(() => s.remove(123)).toThrow(/already removed/);
      expect(() => s.remove(400)).toThrow(/does not exist/);
      // A re-added copy gets a fresh index and the same score as before.
      expect(s.add(rows.slice(123 * dim, 124 * dim))).toBe(400);
      expect((await s.search(q, 1))[0].index).toBe(400);
    }
    await expectAgreement(all, [q, randomRows(1, dim, 43)], 30);
  });

  it('logitsOf scores just the given rows, equal to the full scan', async () => {
    const dim = 20;
    const all = await scorers(randomHead(dim, 12, 5), randomRows(300, dim, 6), ['reference', 'yoco', 'factorized'], 64);
    const q = randomRows(1, dim, 7);
    for (const s of all) {
      const full = await s.logits(q);
      const some = await s.logitsOf(q, [5, 299, 0, 42]);
      for (const [i, r] of [5, 299, 0, 42].entries()) expect(Math.abs(some[i] - full[r])).toBeLessThan(1e-5);
      s.remove(42);
      await expect(s.logitsOf(q, [42])).rejects.toThrow(/not a live row/);
    }
  });

  it('scanMany gives each query exactly what scan gives it (one pass over the rows for all)', async () => {
    const dim = 24;
    const all = await scorers(randomHead(dim, 40, 8), randomRows(1500, dim, 9), ['reference', 'yoco', 'factorized'], 256);
    const queries = Array.from({ length: 37 }, (_, i) => randomRows(1, dim, 100 + i));
    for (const s of all) {
      const many = await s.scanMany(queries);
      expect(many.logits).toHaveLength(37);
      // Scans may reuse their buffers: copy before the next one.
      const manyLogits = many.logits.map((l) => Array.from(l));
      for (let i = 0; i < 37; i++) {
        const one = await s.scan(queries[i]);
        expect(manyLogits[i]).toEqual(Array.from(one.logits));
      }
    }
  });

  it('an empty scorer returns no matches', async () => {
    const all = await scorers(randomHead(4, 4, 1), new Float32Array(0), ['reference', 'yoco', 'factorized']);
    for (const s of all) expect(await s.search(randomRows(1, 4, 1), 5)).toEqual([]);
  });
});

describe('bad vectors', () => {
  it('rejects wrong lengths and non-finite values with distinct errors', async () => {
    const head = randomHead(8, 4, 1);
    const all = await scorers(head, randomRows(5, 8, 1), ['reference', 'yoco', 'factorized']);
    for (const s of all) {
      await expect(s.search(new Float32Array(7), 3)).rejects.toMatchObject({ code: 'VECTOR_LENGTH', expected: 8, actual: 7 });
      await expect(s.search(new Float32Array(16), 3)).rejects.toMatchObject({ code: 'VECTOR_LENGTH' });
      const nan = randomRows(1, 8, 2);
      nan[5] = NaN;
      await expect(s.search(nan, 3)).rejects.toMatchObject({ code: 'VECTOR_NOT_FINITE', position: 5 });
      const inf = randomRows(1, 8, 2);
      inf[0] = -Infinity;
      await expect(s.search(inf, 3)).rejects.toMatchObject({ code: 'VECTOR_NOT_FINITE', position: 0 });
      expect(() => s.add(new Float32Array(12))).toThrow(/has 12 values, expected 8/);
      const badRows = randomRows(2, 8, 3);
      badRows[9] = NaN;
      expect(() => s.add(badRows)).toThrow(/non-finite value \(NaN\) at position 9/);
      // Nothing half-written: the failed adds left the scorer as it was.
      expect(s.size).toBe(5);
      await expect(s.search(randomRows(1, 8, 4), 0)).rejects.toThrow(RangeError);
      expect(await s.search(randomRows(1, 8, 4), 3)).toHaveLength(3);
    }
  });
});
