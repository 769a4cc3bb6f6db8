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
