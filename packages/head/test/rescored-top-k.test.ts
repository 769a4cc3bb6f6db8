import { describe, expect, it } from 'vitest';
import { Rng } from '@yoco/common';
import { RescoredTopK } from '../src/rescored-top-k.js';
import { sigmoid } from '../src/head.js';

describe('RescoredTopK', () => {
  it('keeps the k-th best at every step and gives the k best, ties to the lower row, as a sort of everything does: past its first 256 rows, with ties and fewer than k', () => {
    const rng = new Rng(3);
    for (const { k, n } of [{ k: 10, n: 700 }, { k: 1, n: 40 }, { k: 10, n: 6 }, { k: 25, n: 300 }]) {
      const top = new RescoredTopK(k);
      const seen: [row: number, logit: number][] = [];
      // Rows arrive in no order; logits on a coarse grid so that many tie.
      const rows = Array.from({ length: n }, (_, i) => i * 3 + 1).sort(() => rng.next() - 0.5);
      for (const row of rows) {
        const logit = Math.round(rng.normal() * 8) / 4;
        top.add(row, logit);
        seen.push([row, logit]);
        const sorted = seen.map(([, l]) => l).sort((a, b) => b - a);
        expect(top.kth()).toBe(seen.length < k ? -Infinity : sorted[k - 1]);
      }
      const want = [...seen].sort(([ra, a], [rb, b]) => b - a || ra - rb).slice(0, k).map(([index, logit]) => ({ index, logit, score: sigmoid(logit) }));
      expect(top.top()).toEqual(want);
      expect(top.count).toBe(n);
      expect(top.rowSet()).toEqual(new Set(rows));
    }
  });

  it('refuses a k that is not a positive integer', () => {
    for (const k of [0, -1, 1.5, NaN]) expect(() => new RescoredTopK(k)).toThrow(RangeError);
  });
});
