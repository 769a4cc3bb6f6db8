import { describe, expect, it } from 'vitest';
import { Rng } from '@yoco/common';
import { rescoreReaching } from '../src/bounded-rescore.js';
import { RescoredTopK } from '../src/rescored-top-k.js';

describe('rescoreReaching', () => {
  it('finds the exact top-k from unranked candidates with bounds: many candidates, too few (the k-th below the floor), fewer than the first step, ties', () => {
    const rng = new Rng(11);
    const k = 10;
    const slack = 0.25;
    const count = 5000;
    let beyondCalls = 0;
    for (const { floorRank, grid, trials } of [
      { floorRank: 400, grid: 0, trials: 20 },
      { floorRank: 12, grid: 0, trials: 20 },
      { floorRank: 50, grid: 0.5, trials: 20 },
    ]) {
      for (let t = 0; t < trials; t++) {
        const exact = Float64Array.from({ length: count }, () => (grid ? Math.round(rng.normal() / grid) * grid : rng.normal()));
        // A bound the contract allows: exact <= upper + slack (with a grid, rounded up onto it: bounds tie too).
        const upper = Float64Array.from(exact, (e) => {
          const b = e - slack + rng.next() * 2 * slack;
          return grid ? Math.ceil(b / (grid / 4)) * (grid / 4) : b;
        });
        const floor = [...upper].sort((a, b) => b - a)[floorRank - 1];
        const cand = [...upper.keys()].filter((r) => upper[r] >= floor).sort(() => rng.next() - 0.5);
        const top = new RescoredTopK(k);
        let rescored = 0;
        rescoreReaching({
          rows: Int32Array.from(cand),
          upper: Float64Array.from(cand, (r) => upper[r]),
          n: cand.length,
          floor,
          first: k * 8,
          step: k * 2,
          slack,
          kth: () => top.kth(),
          rescore: (rows) => {
            rescored += rows.length;
            for (const r of rows) top.add(r, exact[r]);
          },
          beyond: (f) => {
            beyondCalls++;
            const done = top.rowSet();
            return [...upper.keys()].filter((r) => upper[r] >= f && !done.has(r));
          },
        });
        const want = [...exact.keys()].sort((a, b) => exact[b] - exact[a] || a - b).slice(0, k);
        expect(top.top().map((m) => m.index)).toEqual(want);
        // Each row at most once, and only rows that could still reach.
        expect(top.count).toBe(rescored);
        expect(new Set(top.rowSet()).size).toBe(rescored);
      }
    }
    // The case with few candidates went past them to every row.
    expect(beyondCalls).toBeGreaterThan(0);
  });

  it('goes on past a step that a tie of bounds already took whole: a candidate below the tie still reaching the k-th is rescored', () => {
    // 100 rows tie at bound 1 (exact 0.5), one row below them at 0.9 is the best (exact 0.95), 19 more far below.
    const upper = Float64Array.from({ length: 120 }, (_, i) => (i < 100 ? 1 : i === 100 ? 0.9 : 0.1));
    const exact = Float64Array.from({ length: 120 }, (_, i) => (i < 100 ? 0.5 : i === 100 ? 0.95 : -0.3));
    const top = new RescoredTopK(10);
    rescoreReaching({
      rows: Int32Array.from(upper.keys()),
      upper,
      n: 120,
      floor: 0.1,
      first: 80,
      step: 20,
      slack: 0.5,
      kth: () => top.kth(),
      rescore: (rows) => rows.forEach((r) => top.add(r, exact[r])),
      beyond: () => [],
    });
    expect(top.top()[0].index).toBe(100);
  });

  it('stops where no candidate left can reach the k-th: it rescores far fewer than it is given', () => {
    const rng = new Rng(2);
    const n = 2000;
    const exact = Float64Array.from({ length: n }, () => rng.normal());
    const upper = Float64Array.from(exact, (e) => e + 0.01);
    const top = new RescoredTopK(5);
    rescoreReaching({
      rows: Int32Array.from(exact.keys()),
      upper,
      n,
      floor: -Infinity,
      first: 40,
      step: 10,
      slack: 0.01,
      kth: () => top.kth(),
      rescore: (rows) => rows.forEach((r) => top.add(r, exact[r])),
      beyond: () => {
        throw new Error('not needed: every row is a candidate');
      },
    });
    expect(top.count).toBe(40);
    expect(top.top().map((m) => m.index)).toEqual([...exact.keys()].sort((a, b) => exact[b] - exact[a]).slice(0, 5));
  });
});
