import { Rng } from '@yoco/common';
import { headToOnnx } from './export-head.js';
import type { Head } from './head.js';
import { parseHead } from './load-head.js';

export interface MetricHeadOptions {
  /** D, the vector width (default 3840: the four pooled ResNet50 stages). */
  dim?: number;
  /** H, hidden units; even (default 512). */
  hidden?: number;
  /** Distance at which the score is 0.5 (default 1). */
  tau?: number;
  /** Steepness: score = sigmoid(alpha * (tau - distance)) (default 8). */
  alpha?: number;
  seed?: number;
  form?: 'conv' | 'dense';
}

export const DEFAULT_METRIC_HEAD = { dim: 3840, hidden: 512, tau: 1, alpha: 8, seed: 1, form: 'conv' } as const;

/**
 * A head that needs no training data: C1 = [R, -R; -R, R] so the hidden layer
 * holds relu(R(q - g)) and relu(R(g - q)), whose sum is |R(q - g)|_1; C2 = -alpha,
 * b2 = alpha * tau. R is a seeded Gaussian projection scaled so that |R x|_1
 * estimates |x|_2, so the score is 0.5 at Euclidean distance tau and falls
 * with distance. With hidden = 2D, R is the identity instead and the head
 * measures the L1 distance exactly. It is a real conv head: every engine runs it unchanged.
 */
export function metricHead(options: MetricHeadOptions = {}): Head {
  const o = { ...DEFAULT_METRIC_HEAD, ...options };
  if (!Number.isInteger(o.dim) || o.dim < 1) throw new RangeError(`metricHead: dim must be a positive integer, got ${o.dim}`);
  if (!Number.isInteger(o.hidden) || o.hidden < 2 || o.hidden % 2 !== 0) {
    throw new RangeError(`metricHead: hidden must be an even integer >= 2, got ${o.hidden}`);
  }
  if (!(o.tau > 0) || !(o.alpha > 0)) throw new RangeError('metricHead: tau and alpha must be > 0');
  const { dim, hidden } = o;
  const r = hidden / 2;
  let R: Float32Array;
  if (r === dim) {
    // As many pairs of hidden units as dimensions: R is the identity, the hidden layer holds |q - g|
    // exactly, and the score follows the L1 distance, scaled so that it matches L2 on average.
    R = new Float32Array(dim * dim);
    const scale = Math.sqrt(Math.PI / (2 * dim));
    for (let i = 0; i < dim; i++) R[i * dim + i] = scale;
  } else {
    // E|N(0, s^2 |x|^2)| = s |x| sqrt(2/pi); r of them sum to |x| when s = 1 / (r sqrt(2/pi)).
    const std = 1 / (r * Math.sqrt(2 / Math.PI));
    R = new Rng(o.seed).normals(r * dim, std);
  }
  const w1 = new Float32Array(hidden * 2 * dim);
  for (let i = 0; i < r; i++) {
    const row = R.subarray(i * dim, (i + 1) * dim);
    const top = i * 2 * dim;
    const bottom = (i + r) * 2 * dim;
    for (let c = 0; c < dim; c++) {
      const v = row[c];
      w1[top + c] = v;
      w1[top + dim + c] = -v;
      w1[bottom + c] = -v;
      w1[bottom + dim + c] = v;
    }
  }
  const bytes = headToOnnx(
    { dim, hidden, w1, b1: new Float32Array(hidden), w2: new Float32Array(hidden).fill(-o.alpha), b2: o.alpha * o.tau },
    { form: o.form, sigmoid: true },
  );
  return parseHead(bytes);
}
