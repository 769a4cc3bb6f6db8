import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Rng } from '@yoco/common';

/** Vectors with the subject each belongs to: what training, evaluation and calibration read. */
export class LabelledSet {
  /** n x dim, row-major. */
  readonly vectors: Float32Array;
  readonly count: number;

  constructor(readonly subjects: readonly string[], vectors: Float32Array, readonly dim: number) {
    if (!(dim >= 1) || vectors.length !== subjects.length * dim) throw new RangeError(`LabelledSet: ${vectors.length} values for ${subjects.length} samples of width ${dim}`);
    this.vectors = vectors;
    this.count = subjects.length;
  }

  static of(samples: readonly { subject: string; vector: ArrayLike<number> }[]): LabelledSet {
    if (samples.length === 0) throw new RangeError('LabelledSet: no samples');
    const dim = samples[0].vector.length;
    const v = new Float32Array(samples.length * dim);
    samples.forEach((s, i) => {
      if (s.vector.length !== dim) throw new RangeError(`sample ${i} (${s.subject}) has ${s.vector.length} values, the first had ${dim}`);
      v.set(s.vector, i * dim);
    });
    return new LabelledSet(samples.map((s) => s.subject), v, dim);
  }

  vector(i: number): Float32Array {
    return this.vectors.subarray(i * this.dim, (i + 1) * this.dim);
  }

  /** Distinct subjects in first-seen order. */
  subjectIds(): string[] {
    return [...new Set(this.subjects)];
  }

  /** The samples whose index passes `keep`, as a set of their own. */
  select(keep: (i: number) => boolean): LabelledSet {
    const idx: number[] = [];
    for (let i = 0; i < this.count; i++) if (keep(i)) idx.push(i);
    const v = new Float32Array(idx.length * this.dim);
    idx.forEach((i, j) => v.set(this.vector(i), j * this.dim));
    return new LabelledSet(idx.map((i) => this.subjects[i]), v, this.dim);
  }

  /**
   * Splits by subject (never a subject on both sides): seeded, so the same
   * data and seed give the same split on every machine. Fractions are of
   * subjects and are taken in order; the last part gets the rest.
   */
  splitBySubjects(fractions: readonly number[], seed = 1): LabelledSet[] {
    const ids = new Rng(seed).shuffle(this.subjectIds().sort());
    const part = new Map<string, number>();
    let start = 0;
    fractions.forEach((f, p) => {
      const end = p === fractions.length - 1 ? ids.length : Math.min(ids.length, start + Math.round(f * ids.length));
      for (let i = start; i < end; i++) part.set(ids[i], p);
      start = end;
    });
    return fractions.map((_, p) => this.select((i) => part.get(this.subjects[i]) === p));
  }
}

/** Reads JSON Lines of {"subject_id", "vector"} (or "vectors": several samples), streamed; a bad line is an error naming it. */
export async function readLabelledJsonl(path: string): Promise<LabelledSet> {
  const samples: { subject: string; vector: Float32Array }[] = [];
  let line = 0;
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const text of lines) {
    line++;
    if (!text.trim()) continue;
    let rec: { subject_id?: unknown; vector?: unknown; vectors?: unknown };
    try {
      rec = JSON.parse(text) as typeof rec;
    } catch {
      throw new Error(`${path}:${line}: not JSON`);
    }
    if (typeof rec.subject_id !== 'string' || rec.subject_id === '') throw new Error(`${path}:${line}: no subject_id`);
    const list = rec.vectors !== undefined ? rec.vectors : [rec.vector];
    if (!Array.isArray(list) || list.length === 0) throw new Error(`${path}:${line}: no vector`);
    for (const v of list) {
      if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new Error(`${path}:${line}: a vector is not a non-empty array of finite numbers`);
      samples.push({ subject: rec.subject_id, vector: Float32Array.from(v as number[]) });
    }
  }
  if (samples.length === 0) throw new Error(`${path}: no samples`);
  return LabelledSet.of(samples);
}
