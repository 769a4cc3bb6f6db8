import { assertVectors } from '@yoco/common';
import { RowIndexError } from './errors/index.js';
import type { Head } from './head.js';
import { topK, type Match } from './top-k.js';

export type EngineName = 'reference' | 'yoco' | 'factorized';

/** What every engine offers; rows are addressed by the index add() handed out. */
export interface Scorer {
  readonly engine: EngineName;
  readonly head: Head;
  /** Rows ever added (removed ones included): the next add() starts here. */
  readonly size: number;
  /** Rows added and not removed. */
  readonly live: number;
  /** Appends n x D rows (row-major); returns the index of the first. */
  add(rows: Float32Array): number;
  /** Drops a row; its index is never reused. */
  remove(index: number): void;
  /** The k best live rows for one query, best first. */
  search(query: Float32Array, k: number): Promise<Match[]>;
  /** The head's logit for the query against every row (NaN for removed rows). */
  logits(query: Float32Array): Promise<Float64Array>;
  /**
   * The same without the copy: logits for rows [0, count) as the engine made
   * them (removed rows hold anything; `alive` says which count), for callers
   * that aggregate rows themselves. Both arrays may be the scorer's own,
   * reused by its next scan: read them as soon as the call resolves (before
   * awaiting anything else), do not keep them.
   */
  scan(query: Float32Array): Promise<{ logits: ArrayLike<number>; alive: Uint8Array; count: number }>;
  /** scan() for several queries at once; engines that can share one pass over the rows do. */
  scanMany(queries: Float32Array[]): Promise<{ logits: ArrayLike<number>[]; alive: Uint8Array; count: number }>;
  /** The head's logit for the query against the given live rows only (a subject's templates: Verify). */
  logitsOf(query: Float32Array, rows: number[]): Promise<Float64Array>;
  /** Waits for queued work (add() projects rows in the background for some engines). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Validation, liveness bookkeeping and top-k selection shared by the engines. */
export abstract class BaseScorer implements Scorer {
  abstract readonly engine: EngineName;
  private alive = new Uint8Array(1024);
  private count = 0;
  private liveCount = 0;
  private closing: Promise<void> | undefined;

  constructor(readonly head: Head) {}

  get size(): number {
    return this.count;
  }

  get live(): number {
    return this.liveCount;
  }

  add(rows: Float32Array): number {
    this.assertOpen();
    const n = assertVectors(rows, this.head.dim, 'gallery rows');
    const first = this.count;
    if (first + n > this.alive.length) {
      const grown = new Uint8Array(Math.max(first + n, this.alive.length * 2));
      grown.set(this.alive);
      this.alive = grown;
    }
    this.alive.fill(1, first, first + n);
    this.appendRows(rows, n, first);
    this.count += n;
    this.liveCount += n;
    return first;
  }

  remove(index: number): void {
    this.assertOpen();
    if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new RowIndexError(index, `does not exist (size ${this.count})`);
    if (this.alive[index] === 0) throw new RowIndexError(index, 'was already removed');
    this.alive[index] = 0;
    this.liveCount--;
    this.clearRow(index);
  }

  async search(query: Float32Array, k: number): Promise<Match[]> {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
    const logits = await this.computeChecked(query);
    return topK(logits, this.alive, this.count, k);
  }

  async logits(query: Float32Array): Promise<Float64Array> {
    const raw = await this.computeChecked(query);
    const out = new Float64Array(this.count);
    for (let i = 0; i < this.count; i++) out[i] = this.alive[i] ? raw[i] : NaN;
    return out;
  }

  async scan(query: Float32Array): Promise<{ logits: ArrayLike<number>; alive: Uint8Array; count: number }> {
    const logits = await this.computeChecked(query);
    return { logits, alive: this.alive, count: logits.length };
  }

  async scanMany(queries: Float32Array[]): Promise<{ logits: ArrayLike<number>[]; alive: Uint8Array; count: number }> {
    this.assertOpen();
    for (const q of queries) assertVectors(q, this.head.dim, 'query', 1);
    await this.flush();
    const count = this.count;
    const logits = count === 0 ? queries.map(() => new Float64Array(0)) : await this.computeManyLogits(queries, count);
    return { logits, alive: this.alive, count };
  }

  /** Default: one scan per query. */
  protected async computeManyLogits(queries: Float32Array[], count: number): Promise<ArrayLike<number>[]> {
    const out: ArrayLike<number>[] = [];
    for (const q of queries) out.push(await this.computeLogits(q, count));
    return out;
  }

  async logitsOf(query: Float32Array, rows: number[]): Promise<Float64Array> {
    this.assertOpen();
    assertVectors(query, this.head.dim, 'query', 1);
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= this.count || this.alive[r] === 0) throw new RowIndexError(r, 'is not a live row');
    }
    await this.flush();
    return this.computeRowLogits(query, rows);
  }

  /** Engines that can score a few rows cheaply override this; the default scores them all and picks. */
  protected async computeRowLogits(query: Float32Array, rows: number[]): Promise<Float64Array> {
    const all = await this.computeLogits(query, this.count);
    return Float64Array.from(rows, (r) => all[r]);
  }

  async flush(): Promise<void> {}

  close(): Promise<void> {
    this.closing ??= this.release();
    return this.closing;
  }

  private async computeChecked(query: Float32Array): Promise<ArrayLike<number>> {
    this.assertOpen();
    assertVectors(query, this.head.dim, 'query', 1);
    await this.flush();
    return this.count === 0 ? new Float64Array(0) : this.computeLogits(query, this.count);
  }

  private assertOpen(): void {
    if (this.closing) throw new Error(`${this.engine} scorer is closed`);
  }

  protected abstract appendRows(rows: Float32Array, n: number, first: number): void;
  protected abstract clearRow(index: number): void;
  /** Logits of the query against rows [0, count); removed rows may hold anything. */
  protected abstract computeLogits(query: Float32Array, count: number): Promise<ArrayLike<number>>;
  protected async release(): Promise<void> {}
}
