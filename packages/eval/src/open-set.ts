import { rate, trialsNeeded, type Rate } from './rate.js';
import type { OperatingPoint } from './verification.js';
import { countAtLeast, sortedDescending, thresholdForRate } from './threshold.js';

/** One 1:N search, reduced to what the rates need. */
export interface SearchOutcome {
  /** Whether the probe's subject is enrolled. */
  mated: boolean;
  /** Best score of the mate's templates (mated searches; NaN otherwise). */
  mateScore: number;
  /** Best score of any other subject (-Infinity when there is none). */
  nonMateScore: number;
}

/** 1-based rank of the mate among subjects: 1 + the subjects scoring above it (ties counted against the mate). */
export function mateRank(s: SearchOutcome, others: ArrayLike<number>): number {
  let r = 1;
  for (let i = 0; i < others.length; i++) if (others[i] >= s.mateScore) r++;
  return r;
}

/**
 * 1:N open set, NIST's way (FRVT/FRTE 1:N): FPIR(t) is the fraction of
 * searches for people not enrolled whose top candidate scores >= t; FNIR(t)
 * the fraction of searches for enrolled people whose mate is not the top
 * candidate at a score >= t.
 */
export class OpenSet {
  readonly mated: number;
  readonly nonMated: number;
  /** Non-mated searches' top scores, descending. */
  readonly nonMatedTop: Float32Array;
  private readonly matedAccepted: Float32Array;
  private readonly rank1: number;
  private readonly rank5: number;

  /** ranks: each mated search's mate rank (same order as the mated outcomes). */
  constructor(outcomes: readonly SearchOutcome[], ranks: readonly number[], readonly gallerySize: number) {
    const mated = outcomes.filter((o) => o.mated);
    if (ranks.length !== mated.length) throw new RangeError(`OpenSet: ${ranks.length} ranks for ${mated.length} mated searches`);
    this.mated = mated.length;
    this.nonMated = outcomes.length - mated.length;
    this.nonMatedTop = sortedDescending(outcomes.filter((o) => !o.mated).map((o) => o.nonMateScore));
    // A mated search is a hit at t when its mate is top-1 and scores >= t: its "hit score" is the
    // mate's score when it ranks first, -1 (never a hit) otherwise.
    this.matedAccepted = sortedDescending(mated.map((o, i) => (ranks[i] === 1 ? o.mateScore : -1)));
    this.rank1 = ranks.filter((r) => r === 1).length;
    this.rank5 = ranks.filter((r) => r <= 5).length;
  }

  fpir(t: number): Rate {
    return rate(countAtLeast(this.nonMatedTop, t), this.nonMated);
  }

  fnir(t: number): Rate {
    return rate(this.mated - countAtLeast(this.matedAccepted, t), this.mated);
  }

  /** Rank-1 and rank-5 identification rates of the mated searches (no threshold). */
  rankRates(): { rank1: Rate; rank5: Rate } {
    return { rank1: rate(this.rank1, this.mated), rank5: rate(this.rank5, this.mated) };
  }

  /** FNIR at the threshold that holds FPIR at `target`; not measurable with fewer than 3/target non-mated searches. */
  at(target: number): OperatingPoint {
    const need = trialsNeeded(target);
    if (this.nonMated < need) return { target, measurable: false, note: `${this.nonMated} non-mated searches; FPIR ${target} needs at least ${need}` };
    if (this.mated === 0) return { target, measurable: false, note: 'no mated searches' };
    const threshold = thresholdForRate(this.nonMatedTop, target);
    return { target, measurable: true, threshold, falsePositive: this.fpir(threshold), falseNegative: this.fnir(threshold) };
  }
}
