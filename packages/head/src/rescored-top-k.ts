import { sigmoid } from './head.js';
import type { Match } from './top-k.js';

/**
 * The exact logits a bounded search has rescored so far (rows scored at most
 * once each): the k-th best, which its stopping rule asks for after every
 * step, kept at hand as the k best are kept in order, and at the end the k
 * best, ties to the lower row. Typed arrays, no map: a search rescores a
 * hundred rows or so, and a sort of them all per step cost more than the
 * rescoring. reset() readies it for the next search (typed arrays are
 * costly to allocate on a search's path: three of them took 10 µs).
 */
export class RescoredTopK {
  private rows = new Int32Array(256);
  private logits = new Float64Array(256);
  private n = 0;
  /** The k best logits so far, best first (fewer while fewer are in). */
  private best = new Float64Array(16);
  private size = 0;
  private k = 1;

  constructor(k: number) {
    this.reset(k);
  }

  /** Empty again, for the k best. */
  reset(k: number): this {
    if (!(Number.isInteger(k) && k >= 1)) throw new RangeError(`k must be a positive integer, got ${k}`);
    if (this.best.length < k) this.best = new Float64Array(k);
    this.k = k;
    this.n = 0;
    this.size = 0;
    return this;
  }

  get count(): number {
    return this.n;
  }

  add(row: number, logit: number): void {
    if (this.n === this.rows.length) {
      const rows = new Int32Array(this.n * 2);
      rows.set(this.rows);
      this.rows = rows;
      const logits = new Float64Array(this.n * 2);
      logits.set(this.logits);
      this.logits = logits;
    }
    this.rows[this.n] = row;
    this.logits[this.n++] = logit;
    const best = this.best;
    if (this.size === this.k && !(logit > best[this.k - 1])) return;
    // One insertion into k sorted values; the worst falls off once there are k.
    let i = this.size < this.k ? this.size++ : this.k - 1;
    while (i > 0 && best[i - 1] < logit) {
      best[i] = best[i - 1];
      i--;
    }
    best[i] = logit;
  }

  /** The k-th best exact logit so far; -Infinity while fewer than k are in. */
  kth(): number {
    return this.size < this.k ? -Infinity : this.best[this.k - 1];
  }

  /** The rows rescored so far, as a set (for the rare pass over every row). */
  rowSet(): Set<number> {
    return new Set(this.rows.subarray(0, this.n));
  }

  /** The k best, best first, ties broken by the lower row. */
  top(): Match[] {
    const floor = this.kth();
    const picked: number[] = [];
    for (let i = 0; i < this.n; i++) if (this.logits[i] >= floor) picked.push(i);
    return picked
      .sort((a, b) => this.logits[b] - this.logits[a] || this.rows[a] - this.rows[b])
      .slice(0, this.k)
      .map((i) => ({ index: this.rows[i], logit: this.logits[i], score: sigmoid(this.logits[i]) }));
  }
}
