import type { Ranked } from './top-k.js';

/** One exact top-k from approximate logits with bounds: the row-level one (scorer) and the subject-level one (slice) alike. */
export interface BoundedRescore {
  /** Candidates by the most their exact logit can be (approximate logit plus bound), best first. */
  wide: Ranked;
  /** How many `wide` was asked for: when it holds fewer, it holds every candidate. */
  limit: number;
  /** Rescored at once, from the top of `wide`. */
  first: number;
  /** Rescored per step further down. */
  step: number;
  /** The query's own share of the bound (ScanBounds.slack). */
  slack: number;
  /** The k-th best exact logit so far (-Infinity while there are fewer). */
  kth(): number;
  rescore(candidates: number[]): void;
  /** Every candidate not rescored yet whose bound still reaches `floor` (a pass over them all). */
  beyond(floor: number): number[];
}

/**
 * Rescores candidates down `wide` while their bound still reaches the k-th
 * best exact logit (every one below the first that does not is lower still);
 * only when the whole list could still reach is every candidate's bound
 * looked at, until none is left. A candidate left out cannot beat the k-th,
 * so the exact top-k is among those rescored.
 */
export function rescoreWithinBounds(o: BoundedRescore): void {
  const { ids, values, length } = o.wide;
  let next = Math.min(o.first, length);
  o.rescore(Array.from(ids.subarray(0, next)));
  for (;;) {
    const floor = o.kth() - o.slack;
    const batch: number[] = [];
    while (next < length && values[next] >= floor && batch.length < o.step) batch.push(ids[next++]);
    if (batch.length > 0) {
      o.rescore(batch);
      continue;
    }
    if (next < length || length < o.limit) return;
    const more = o.beyond(floor);
    if (more.length === 0) return;
    o.rescore(more);
  }
}

/** rescoreReaching's scratch (it runs synchronously, one call at a time; typed arrays are costly to allocate per call). */
let sortedScratch = new Float64Array(0);
let doneScratch = new Uint8Array(0);

/** rescoreWithinBounds for the rows whose bound reaches a floor, as they come (unranked). */
export interface ReachingRescore {
  /** Candidates 0 .. n - 1: rows[i] with bound upper[i]; every row whose bound reaches `floor` is one, every other row's is below it. */
  rows: Int32Array;
  upper: Float64Array;
  n: number;
  floor: number;
  first: number;
  step: number;
  slack: number;
  kth(): number;
  rescore(rows: number[]): void;
  /** Every row not rescored yet whose bound reaches `floor` (a pass over them all). */
  beyond(floor: number): number[];
}

/**
 * The same stopping rule as rescoreWithinBounds, without ranking the
 * candidates: one sort of their bounds gives the bound at any rank, and each
 * step rescores every candidate left at or above the next rank's bound that
 * still reaches the k-th best exact logit. (Ranking the ~160 candidates of a
 * search at 50 000 rows was a heap sort that cost half as much as rescoring
 * them.) A candidate left out cannot beat the k-th, so the exact top-k is
 * among those rescored.
 */
export function rescoreReaching(o: ReachingRescore): void {
  const { rows, upper, n } = o;
  if (sortedScratch.length < n) {
    sortedScratch = new Float64Array(Math.max(n, 2 * sortedScratch.length));
    doneScratch = new Uint8Array(sortedScratch.length);
  }
  const sorted = sortedScratch.subarray(0, n);
  sorted.set(upper.subarray(0, n));
  sorted.sort();
  /** The bound at rank r (1 the best; past the last, the last). */
  const boundAt = (r: number) => sorted[n - Math.min(r, n)];
  const done = doneScratch.fill(0, 0, n);
  let left = n;
  const take = (least: number): number[] => {
    const batch: number[] = [];
    for (let i = 0; i < n; i++) {
      if (done[i] === 0 && upper[i] >= least) {
        done[i] = 1;
        batch.push(rows[i]);
      }
    }
    left -= batch.length;
    return batch;
  };
  let rank = Math.min(o.first, n);
  if (n > 0) o.rescore(take(boundAt(rank)));
  for (;;) {
    const need = o.kth() - o.slack;
    if (left === 0) {
      // Every candidate is rescored; rows below the floor may still reach only when the k-th is below it.
      if (need < o.floor) {
        const more = o.beyond(need);
        if (more.length > 0) o.rescore(more);
      }
      return;
    }
    rank = Math.min(n, rank + o.step);
    const batch = take(Math.max(need, boundAt(rank)));
    if (batch.length > 0) o.rescore(batch);
    // None left that reaches: those left are below the k-th, and every row outside is below them.
    else if (boundAt(rank) <= need) return;
  }
}
