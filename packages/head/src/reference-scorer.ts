import { BaseScorer, type BaseScorerOptions } from './base-scorer.js';
import { RowStore } from './row-store.js';
import type { Head } from './head.js';

/**
 * The truth the other engines are tested against: the head's formula applied
 * to one pair at a time, every product accumulated in float64, nothing shared
 * between pairs. Slow on purpose (O(2D·H) per row).
 */
export class ReferenceScorer extends BaseScorer {
  readonly engine = 'reference' as const;
  private readonly rows: RowStore;

  constructor(head: Head, options: BaseScorerOptions = {}) {
    super(head, options);
    this.rows = new RowStore(head.dim);
  }

  protected engineCapacity(): number {
    return this.rows.maxRows;
  }

  protected cloneWith(rows: number[]): ReferenceScorer {
    const next = new ReferenceScorer(this.head, this.base);
    for (const r of rows) next.rows.append(this.rows.row(r), 1);
    return next;
  }

  /** logit(q, g) for one pair. */
  static pairLogit(head: Head, q: ArrayLike<number>, g: ArrayLike<number>): number {
    const { dim, hidden, w1, b1, w2 } = head;
    let logit = head.b2;
    for (let h = 0; h < hidden; h++) {
      const base = h * 2 * dim;
      let z = b1[h];
      for (let c = 0; c < dim; c++) z += w1[base + c] * q[c];
      for (let c = 0; c < dim; c++) z += w1[base + dim + c] * g[c];
      if (z > 0) logit += w2[h] * z;
    }
    return logit;
  }

  protected appendRows(rows: Float32Array, n: number): void {
    this.rows.append(rows, n);
  }

  protected clearRow(index: number): void {
    this.rows.clear(index);
  }

  protected async computeLogits(query: Float32Array, count: number): Promise<Float64Array> {
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = ReferenceScorer.pairLogit(this.head, query, this.rows.row(i));
    return out;
  }
}
