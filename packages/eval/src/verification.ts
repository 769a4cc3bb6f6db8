import { rate, trialsNeeded, type Rate } from './rate.js';
import { countAtLeast, sortedDescending, thresholdForRate } from './threshold.js';

/** One operating point: the threshold that holds a false-positive rate at its target, and what it costs. */
export interface OperatingPoint {
  /** The false-positive rate asked for (FMR or FPIR). */
  target: number;
  measurable: boolean;
  /** Why not, when not measurable. */
  note?: string;
  threshold?: number;
  /** The false-positive rate measured at the threshold (FMR or FPIR). */
  falsePositive?: Rate;
  /** The false-negative rate at the threshold (FNMR or FNIR). */
  falseNegative?: Rate;
}

export interface CurvePoint {
  threshold: number;
  fmr: number;
  fnmr: number;
}

/** 1:1: genuine (same subject) and impostor (different subjects) comparison scores. */
export class Verification {
  readonly genuine: Float32Array;
  readonly impostor: Float32Array;

  constructor(genuine: ArrayLike<number>, impostor: ArrayLike<number>) {
    this.genuine = sortedDescending(genuine);
    this.impostor = sortedDescending(impostor);
  }

  fmr(t: number): Rate {
    return rate(countAtLeast(this.impostor, t), this.impostor.length);
  }

  fnmr(t: number): Rate {
    return rate(this.genuine.length - countAtLeast(this.genuine, t), this.genuine.length);
  }

  /** FNMR at the threshold that holds FMR at `target`; not measurable with fewer than 3/target impostor pairs. */
  at(target: number): OperatingPoint {
    const need = trialsNeeded(target);
    if (this.impostor.length < need) return { target, measurable: false, note: `${this.impostor.length} impostor pairs; FMR ${target} needs at least ${need}` };
    if (this.genuine.length === 0) return { target, measurable: false, note: 'no genuine pairs' };
    const threshold = thresholdForRate(this.impostor, target);
    return { target, measurable: true, threshold, falsePositive: this.fmr(threshold), falseNegative: this.fnmr(threshold) };
  }

  /** The ROC / DET curve: one point per distinct impostor rate, thinned to about `points` on a log scale of FMR. */
  curve(points = 200): CurvePoint[] {
    const out: CurvePoint[] = [];
    const n = this.impostor.length;
    if (n === 0) return out;
    let lastLog = Infinity;
    const step = Math.log10(n) / points;
    for (let i = 0; i < n; i++) {
      if (i + 1 < n && this.impostor[i + 1] === this.impostor[i]) continue;
      const fmr = (i + 1) / n;
      const l = Math.log10(fmr);
      if (lastLog !== Infinity && l - lastLog < step && i !== n - 1) continue;
      lastLog = l;
      const t = this.impostor[i];
      out.push({ threshold: t, fmr, fnmr: this.fnmr(t).rate });
    }
    return out;
  }
}
