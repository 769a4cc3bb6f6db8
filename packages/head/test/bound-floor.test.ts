import { describe, expect, it } from 'vitest';
import { Rng } from '@yoco/common';
import { BoundFloors } from '../src/bound-floor.js';

describe('BoundFloors', () => {
  it('floor(m) is exactly the m-th largest block maximum: spread values, ties, a crowd in one bucket, one far outlier, infinities', () => {
    const rng = new Rng(4);
    const n = 3125;
    const cases: [string, (i: number) => number][] = [
      ['spread', () => rng.normal() * 3],
      ['ties', () => Math.round(rng.normal() * 4) / 2],
      // Nearly all values in one bucket of the first pass: the m-th is found among them.
      ['crowd and outlier', (i) => (i === 17 ? 1e6 : 1 + rng.next() * 1e-9)],
      ['infinities', (i) => (i % 500 === 0 ? -Infinity : i === 3 ? Infinity : rng.normal())],
      ['all equal', () => 2.5],
    ];
    for (const [name, value] of cases) {
      const max = Float64Array.from({ length: n }, (_, i) => value(i));
      const floors = BoundFloors.of({ rows: 16, max }, n * 16, 160)!;
      const sorted = [...max].sort((a, b) => b - a);
      for (const m of [1, 2, 10, 160, 161, 391, n - 1, n]) expect(floors.floor(m), `${name}, m = ${m}`).toBe(sorted[m - 1]);
      expect(floors.floor(n + 1)).toBe(-Infinity);
    }
  });

  it('rowsReaching gives the live rows whose bound reaches the floor, in row order, in a buffer it grows, reading only the blocks whose largest bound reaches it', () => {
    const rng = new Rng(9);
    const count = 16 * 400 - 5;
    const logits = Float64Array.from({ length: count }, () => rng.normal());
    const rowSlack = Float32Array.from({ length: count }, () => rng.next() * 0.3);
    const alive = Uint8Array.from({ length: count }, (_, i) => (i % 13 === 0 ? 0 : 1));
    const nBlocks = Math.ceil(count / 16);
    const max = new Float64Array(nBlocks).fill(-Infinity);
    for (let r = 0; r < count; r++) max[r >> 4] = Math.max(max[r >> 4], logits[r] + rowSlack[r]);
    const floors = BoundFloors.of({ rows: 16, max }, count, 40)!;
    const into = { rows: new Int32Array(1) };
    for (const m of [1, 40, 300]) {
      const floor = floors.floor(m);
      const n = floors.rowsReaching(logits, rowSlack, alive, count, floor, into);
      const want = [...logits.keys()].filter((r) => alive[r] === 1 && logits[r] + rowSlack[r] >= floor);
      expect(Array.from(into.rows.subarray(0, n)), `m = ${m}`).toEqual(want);
      expect(n).toBeGreaterThanOrEqual(Math.min(m, want.length));
    }
    // A block whose largest bound is below the floor is not read: rows there that would pass are not found.
    const best = max.indexOf(Math.max(...max));
    const planted = new Float64Array(max);
    planted[best] = -Infinity;
    const lying = BoundFloors.of({ rows: 16, max: planted }, count, 40)!;
    const floor = lying.floor(40);
    const n = lying.rowsReaching(logits, rowSlack, alive, count, floor, into);
    const reach = (r: number) => alive[r] === 1 && logits[r] + rowSlack[r] >= floor;
    expect([...logits.keys()].some((r) => r >> 4 === best && reach(r))).toBe(true);
    expect(Array.from(into.rows.subarray(0, n))).toEqual([...logits.keys()].filter((r) => r >> 4 !== best && reach(r)));
  });
});
