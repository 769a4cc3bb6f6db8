import { betaQuantile } from './beta.js';

/** An error rate with what it was counted from and its exact 95% interval. */
export interface Rate {
  rate: number;
  count: number;
  total: number;
  /** Clopper-Pearson 95% interval. */
  ci95: [number, number];
}

/** The exact (Clopper-Pearson) interval for count successes in total trials. */
export function clopperPearson(count: number, total: number, confidence = 0.95): [number, number] {
  if (!(Number.isInteger(count) && Number.isInteger(total) && count >= 0 && count <= total)) throw new RangeError(`clopperPearson: need 0 <= count <= total, got ${count} of ${total}`);
  if (total === 0) return [0, 1];
  const alpha = 1 - confidence;
  const lo = count === 0 ? 0 : betaQuantile(alpha / 2, count, total - count + 1);
  const hi = count === total ? 1 : betaQuantile(1 - alpha / 2, count + 1, total - count);
  return [lo, hi];
}

export function rate(count: number, total: number): Rate {
  return { rate: total === 0 ? NaN : count / total, count, total, ci95: clopperPearson(count, total) };
}

/**
 * Trials needed before a rate of `target` means anything: 3 / target, so that
 * with no error at all the 95% upper bound (the rule of three) is at the
 * target. Below it a report says "not measurable", not a number.
 */
export function trialsNeeded(target: number): number {
  return Math.ceil(3 / target);
}
