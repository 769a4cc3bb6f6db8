import type { Match } from './top-k.js';

/** One exact top-k from approximate logits with bounds: the row-level one (scorer) and the subject-level one (slice) alike. */
export interface BoundedRescore {
  /** Candidates by the most their exact logit can be (Match.logit: approximate logit plus bound), best first. */
  wide: Match[];
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
  o.rescore(o.wide.slice(0, o.first).map((m) => m.index));
  let next = o.first;
  for (;;) {
    const floor = o.kth() - o.slack;
    const batch: number[] = [];
    while (next < o.wide.length && o.wide[next].logit >= floor && batch.length < o.step) batch.push(o.wide[next++].index);
    if (batch.length > 0) {
      o.rescore(batch);
      continue;
    }
    if (next < o.wide.length || o.wide.length < o.limit) return;
    const more = o.beyond(floor);
    if (more.length === 0) return;
    o.rescore(more);
  }
}
