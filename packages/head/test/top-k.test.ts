import { describe, expect, it } from 'vitest';
import { Rng } from '@yoco/common';
import { kthLargest, rankedOf, topK } from '../src/top-k.js';

/** The k best positions by a full sort: larger value first, the earlier position on a tie. */
function bySort(values: Float64Array, k: number, alive?: Uint8Array): number[] {
  return [...values.keys()]
    .filter((i) => !alive || alive[i] === 1)
    .sort((a, b) => values[b] - values[a] || a - b)
    .slice(0, k);
}

describe('rankedOf', () => {
  it('ranks the k largest best first, ties to the earlier position, named by ids, over live positions only', () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + rng.int(400);
      const k = 1 + rng.int(n + 20);
      // Few distinct values: ties everywhere.
      const values = Float64Array.from({ length: n }, () => rng.int(9) - 4);
      const alive = Uint8Array.from({ length: n }, () => (rng.int(4) === 0 ? 0 : 1));
      const ids = Int32Array.from({ length: n }, (_, i) => 1000 + 3 * i);
      const want = bySort(values, k);
      const got = rankedOf(values, n, k, ids);
      expect(got.length).toBe(want.length);
      expect(Array.from(got.ids.subarray(0, got.length))).toEqual(want.map((i) => ids[i]));
      expect(Array.from(got.values.subarray(0, got.length))).toEqual(want.map((i) => values[i]));
      const live = rankedOf(values, n, k, undefined, alive);
      const wantLive = bySort(values, k, alive);
      expect(Array.from(live.ids.subarray(0, live.length))).toEqual(wantLive);
      // The same order topK gives its matches.
      expect(topK(values, alive, n, k).map((m) => m.index)).toEqual(wantLive);
    }
  });
});

describe('kthLargest', () => {
  it('is the k-th largest, ties counted, -Infinity below k values, from any iterable', () => {
    const rng = new Rng(12);
    for (let trial = 0; trial < 200; trial++) {
      const n = rng.int(60);
      const k = 1 + rng.int(n + 5);
      const values = Array.from({ length: n }, () => (rng.int(11) - 5) / 4);
      const want = n < k ? -Infinity : [...values].sort((a, b) => b - a)[k - 1];
      expect(kthLargest(values, n, k)).toBe(want);
      expect(kthLargest(new Map(values.map((v, i) => [i, v])).values(), n, k)).toBe(want);
    }
  });
});
