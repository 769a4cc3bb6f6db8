import { Rng, withDefaults } from '@yoco/common';
import type { Head } from '@yoco/head';
import { scoreHistogram, type Histogram } from './histogram.js';
import type { LabelledSet } from './labelled-set.js';
import { mateRank, OpenSet, type SearchOutcome } from './open-set.js';
import type { Rate } from './rate.js';
import { scoreMatrix } from './score-matrix.js';
import { Verification, type CurvePoint, type OperatingPoint } from './verification.js';

export interface EvaluationOptions {
  /** Fraction of subjects enrolled for the 1:N searches (default 0.5); the others are the people never enrolled. */
  enrolFraction?: number;
  /** FMR targets of the 1:1 report (default 1e-2, 1e-3, 1e-4). */
  fmr?: number[];
  /** FPIR targets of the 1:N report (default 1e-2, 1e-3). */
  fpir?: number[];
  seed?: number;
  bins?: number;
  /**
   * The enrolled templates for the 1:N searches (several per subject allowed;
   * a subject scores its best): every sample of the set is then a search,
   * mated when its subject is here. Without it, enrolFraction decides.
   */
  gallery?: LabelledSet;
}

export const DEFAULT_EVALUATION = { enrolFraction: 0.5, fmr: [1e-2, 1e-3, 1e-4], fpir: [1e-2, 1e-3], seed: 1, bins: 50 } as const;

export interface EvaluationReport {
  head: string;
  samples: number;
  subjects: number;
  verification: {
    genuine_pairs: number;
    impostor_pairs: number;
    /** Balanced pair accuracy at score 0.5 (the head's own decision): the mean of the genuine and impostor pass/fail rates. */
    pair_accuracy: number;
    at_fmr: OperatingPoint[];
    curve: CurvePoint[];
  };
  identification: {
    gallery_size: number;
    mated_searches: number;
    non_mated_searches: number;
    rank1: Rate;
    rank5: Rate;
    at_fpir: OperatingPoint[];
  };
  histogram: Histogram;
}

/** What evaluate() computed, for callers that go on (calibrate, plots). */
export interface Evaluation {
  report: EvaluationReport;
  verification: Verification;
  openSet: OpenSet;
}

/**
 * The protocol. 1:1: every ordered pair of distinct samples, genuine when
 * both have the same subject. 1:N: a seeded enrolFraction of the subjects
 * is enrolled with its first sample as its one template; each of their
 * other samples is a mated search, and every sample of the others a
 * non-mated one; or, with a gallery given, every sample searches it. All
 * scores come through a real scorer.
 */
export async function evaluate(set: LabelledSet, head: Head, options: EvaluationOptions = {}): Promise<Evaluation> {
  const o = withDefaults(DEFAULT_EVALUATION, options) as typeof DEFAULT_EVALUATION & EvaluationOptions;
  if (o.gallery && o.gallery.dim !== set.dim) throw new RangeError(`the gallery's vectors have ${o.gallery.dim} values, the set's ${set.dim}`);
  if (!(o.enrolFraction > 0 && o.enrolFraction < 1)) throw new RangeError(`enrolFraction must be in (0, 1), got ${o.enrolFraction}`);
  const n = set.count;
  const m = await scoreMatrix(head, set, set);
  const genuine: number[] = [];
  const impostor = new Float32Array(n * n);
  let imp = 0;
  for (let p = 0; p < n; p++) {
    for (let g = 0; g < n; g++) {
      if (p === g) continue;
      const s = m[p * n + g];
      if (set.subjects[p] === set.subjects[g]) genuine.push(s);
      else impostor[imp++] = s;
    }
  }
  const verification = new Verification(genuine, impostor.subarray(0, imp));

  const ids = set.subjectIds().sort();
  // Searches: (probe index, and the gallery's columns grouped by subject) over one score matrix.
  let g: { subjects: string[]; columns: number[][]; matrix: Float32Array; width: number; skip: Set<number> };
  if (o.gallery) {
    const byCol = new Map<string, number[]>();
    o.gallery.subjects.forEach((s, c) => byCol.set(s, [...(byCol.get(s) ?? []), c]));
    g = { subjects: [...byCol.keys()], columns: [...byCol.values()], matrix: await scoreMatrix(head, o.gallery, set), width: o.gallery.count, skip: new Set() };
  } else {
    new Rng(o.seed).shuffle(ids);
    const enrolled = new Set(ids.slice(0, Math.max(1, Math.round(o.enrolFraction * ids.length))));
    const templateOf = new Map<string, number>();
    for (let i = 0; i < n; i++) if (enrolled.has(set.subjects[i]) && !templateOf.has(set.subjects[i])) templateOf.set(set.subjects[i], i);
    g = { subjects: [...templateOf.keys()], columns: [...templateOf.values()].map((c) => [c]), matrix: m, width: n, skip: new Set(templateOf.values()) };
  }
  const enrolledSubjects = new Set(g.subjects);
  const outcomes: SearchOutcome[] = [];
  const ranks: number[] = [];
  for (let p = 0; p < n; p++) {
    if (g.skip.has(p)) continue;
    const subject = set.subjects[p];
    const mated = enrolledSubjects.has(subject);
    let mateScore = NaN;
    let nonMateScore = -Infinity;
    const others: number[] = [];
    g.subjects.forEach((s, k) => {
      let score = -Infinity;
      for (const c of g.columns[k]) score = Math.max(score, g.matrix[p * g.width + c]);
      if (s === subject) mateScore = score;
      else {
        others.push(score);
        if (score > nonMateScore) nonMateScore = score;
      }
    });
    const outcome = { mated, mateScore, nonMateScore };
    outcomes.push(outcome);
    if (mated) ranks.push(mateRank(outcome, others));
  }
  const openSet = new OpenSet(outcomes, ranks, g.subjects.length);
  const report = reportOf(head.id, { samples: n, subjects: ids.length }, verification, openSet, o);
  return { report, verification, openSet };
}


/**
 * The report of one evaluation from its pair scores and searches, however
 * they were scored (in this process, or through a running cluster).
 */
export function reportOf(
  headId: string,
  counts: { samples: number; subjects: number },
  verification: Verification,
  openSet: OpenSet,
  options: { fmr?: readonly number[]; fpir?: readonly number[]; bins?: number } = {},
): EvaluationReport {
  const o = withDefaults(DEFAULT_EVALUATION, options);
  const fmrHalf = verification.fmr(0.5);
  const fnmrHalf = verification.fnmr(0.5);
  return {
    head: headId,
    samples: counts.samples,
    subjects: counts.subjects,
    verification: {
      genuine_pairs: verification.genuine.length,
      impostor_pairs: verification.impostor.length,
      pair_accuracy: 1 - (fmrHalf.rate + fnmrHalf.rate) / 2,
      at_fmr: o.fmr.map((t) => verification.at(t)),
      curve: verification.curve(),
    },
    identification: {
      gallery_size: openSet.gallerySize,
      mated_searches: openSet.mated,
      non_mated_searches: openSet.nonMated,
      ...openSet.rankRates(),
      at_fpir: o.fpir.map((t) => openSet.at(t)),
    },
    histogram: scoreHistogram(verification.genuine, verification.impostor, o.bins),
  };
}
