import { Rng } from '@yoco/common';
import { headToOnnx, parseHead, type Head, type Match } from '@yoco/head';

/** A random head whose logits stay in a range where probabilities do not saturate. */
export function randomHead(dim: number, hidden: number, seed: number, form: 'conv' | 'dense' = 'conv'): Head {
  const rng = new Rng(seed);
  const w1 = rng.normals(hidden * 2 * dim, 1 / Math.sqrt(2 * dim));
  const b1 = rng.normals(hidden, 0.1);
  const w2 = rng.normals(hidden, 2 / Math.sqrt(hidden));
  return parseHead(headToOnnx({ dim, hidden, w1, b1, w2, b2: 0.1 }, { form }));
}

export function randomRows(n: number, dim: number, seed: number): Float32Array {
  return new Rng(seed).normals(n * dim);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expectSameLength(a, b);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const an = Number.isNaN(a[i]);
    if (an !== Number.isNaN(b[i])) return Infinity;
    if (!an) m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m;
}

function expectSameLength(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
}

export function probabilities(logits: ArrayLike<number>): Float64Array {
  return Float64Array.from(logits, (l) => 1 / (1 + Math.exp(-l)));
}

export const indices = (m: Match[]) => m.map((x) => x.index);

/** n unit-norm rows (row-major), as embeddings are. */
export function unitRows(n: number, dim: number, rng: Rng): Float32Array {
  const out = rng.normals(n * dim);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += out[i * dim + j] ** 2;
    const norm = Math.sqrt(s);
    for (let j = 0; j < dim; j++) out[i * dim + j] /= norm;
  }
  return out;
}
