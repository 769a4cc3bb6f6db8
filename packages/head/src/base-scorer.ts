import { assertVectors } from '@yoco/common';
import { CapacityError, RowIndexError } from './errors/index.js';
import type { Head } from './head.js';
import { topK, type Match } from './top-k.js';
import type { ScanBounds } from './int8-mirror.js';

export type EngineName = 'reference' | 'yoco' | 'factorized' | 'int8' | 'resident';

/**
 * What one scan saw: logits for rows [0, count) and which of those rows were
 * live. With `bounds` (the int8 engine) the logits are approximate, each
 * within a stated bound of the exact one, which bounds.exact() gives.
 */
export interface ScanResult {
  logits: ArrayLike<number>;
  alive: Uint8Array;
  count: number;
  bounds?: ScanBounds;
}

/** Rows a scorer lost to a failed projection: they are dead, and their templates must be loaded again. */
export type FaultListener = (err: Error, rows: number) => void;

/** What every engine offers; rows are addressed by the index add() handed out. */
export interface Scorer {
  readonly engine: EngineName;
  readonly head: Head;
  /** Rows ever added (removed ones included): the next add() starts here. */
  readonly size: number;
  /** Rows added and not removed. */
  readonly live: number;
  /** Rows removed (or lost) but still taking space until compact(). */
  readonly dead: number;
  /** The most rows this scorer can hold; add() refuses beyond it. */
  readonly capacity: number;
  /** No work queued: every row added is scannable (what compact() needs). */
  readonly idle: boolean;
  /** Appends n x D rows (row-major); returns the index of the first. Throws CapacityError, nothing added, past capacity. */
  add(rows: Float32Array): number;
  /** Drops a row; its index is never reused by this scorer. */
  remove(index: number): void;
  /** The k best live rows for one query, best first. */
  search(query: Float32Array, k: number): Promise<Match[]>;
  /** The head's logit for the query against every row (NaN for removed rows and rows not projected yet). */
  logits(query: Float32Array): Promise<Float64Array>;
  /**
   * The same without the copy: logits for rows [0, count) as the engine made
   * them (removed rows hold anything; `alive` says which count). `count` is
   * the rows the scan read, which may be fewer than `size` while rows are
   * still being projected: a row is scanned only once it is complete. Both
   * arrays may be the scorer's own, reused by its next scan: read them as
   * soon as the call resolves (before awaiting anything else), do not keep
   * them.
   */
  scan(query: Float32Array): Promise<ScanResult>;
  /** scan() for several queries at once; engines that can share one pass over the rows do. One count for all. */
  scanMany(queries: Float32Array[]): Promise<{ logits: ArrayLike<number>[]; alive: Uint8Array; count: number; bounds?: (ScanBounds | undefined)[] }>;
  /** The head's logit for the query against the given rows (a subject's templates: Verify); -Infinity for a row that died meanwhile. */
  logitsOf(query: Float32Array, rows: number[]): Promise<Float64Array>;
  /**
   * A new scorer holding only the live rows, in index order, and map[old] =
   * its new index (-1 for dead rows). Synchronous, so nothing can change in
   * between; needs an idle scorer (await flush() first). This scorer is left
   * as it was (searches running on it finish); close it when done.
   */
  compact(): { scorer: Scorer; map: Int32Array };
  /** An empty scorer of the same engine and options, sharing what is compiled (a reload fills it beside this one). */
  fresh(): Scorer;
  /** Waits for queued work (add() projects rows in the background for some engines). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface BaseScorerOptions {
  /** Refuse rows beyond this many (default: what the engine can hold). */
  maxRows?: number;
  onFault?: FaultListener;
}

/** Validation, liveness bookkeeping and top-k selection shared by the engines. */
export abstract class BaseScorer implements Scorer {
  abstract readonly engine: EngineName;
  private alive = new Uint8Array(1024);
  private count = 0;
  private liveCount = 0;
  /** Rows marked dead by a fault (not by remove()): remove() on them is a no-op, not an error. */
  private readonly lost = new Set<number>();
  private closing: Promise<void> | undefined;

  constructor(readonly head: Head, protected readonly base: BaseScorerOptions = {}) {
    if (base.maxRows !== undefined && !(Number.isInteger(base.maxRows) && base.maxRows >= 1)) {
      throw new RangeError(`maxRows must be a positive integer, got ${base.maxRows}`);
    }
  }

  get size(): number {
    return this.count;
  }

  get live(): number {
    return this.liveCount;
  }

  get dead(): number {
    return this.count - this.liveCount;
  }

  get capacity(): number {
    return Math.min(this.base.maxRows ?? Infinity, this.engineCapacity());
  }

  get idle(): boolean {
    return true;
  }

  add(rows: Float32Array): number {
    this.assertOpen();
    const n = assertVectors(rows, this.head.dim, 'gallery rows');
    const first = this.count;
    if (first + n > this.capacity) throw new CapacityError(this.capacity, first, n);
    this.grow(first + n);
    this.alive.fill(1, first, first + n);
    this.appendRows(rows, n, first);
    this.count += n;
    this.liveCount += n;
    return first;
  }

  remove(index: number): void {
    this.assertOpen();
    if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new RowIndexError(index, `does not exist (size ${this.count})`);
    if (this.lost.delete(index)) return;
    if (this.alive[index] === 0) throw new RowIndexError(index, 'was already removed');
    this.alive[index] = 0;
    this.liveCount--;
    this.clearRow(index);
  }

  async search(query: Float32Array, k: number): Promise<Match[]> {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
    const logits = await this.computeChecked(query);
    return topK(logits, this.alive, logits.length, k);
  }

  async logits(query: Float32Array): Promise<Float64Array> {
    const raw = await this.computeChecked(query);
    const out = new Float64Array(this.count).fill(NaN);
    for (let i = 0; i < raw.length; i++) if (this.alive[i]) out[i] = raw[i];
    return out;
  }

  async scan(query: Float32Array): Promise<ScanResult> {
    const logits = await this.computeChecked(query, true);
    const bounds = this.boundsOf(logits);
    return { logits, alive: this.alive, count: logits.length, ...(bounds ? { bounds } : {}) };
  }

  async scanMany(queries: Float32Array[]): Promise<{ logits: ArrayLike<number>[]; alive: Uint8Array; count: number; bounds?: (ScanBounds | undefined)[] }> {
    this.assertOpen();
    for (const q of queries) assertVectors(q, this.head.dim, 'query', 1);
    await this.flush();
    if (this.count === 0) return { logits: queries.map(() => new Float64Array(0)), alive: this.alive, count: 0 };
    const logits = await this.computeManyLogits(queries, this.count, true);
    // Every query of a batch is scanned over the same rows; the shortest is the safe count all the same.
    const count = logits.reduce((m, l) => Math.min(m, l.length), Infinity);
    const bounds = logits.map((l) => this.boundsOf(l));
    return { logits, alive: this.alive, count, ...(bounds.some(Boolean) ? { bounds } : {}) };
  }

  /** Default: one scan per query. */
  protected async computeManyLogits(queries: Float32Array[], count: number, approximate = false): Promise<ArrayLike<number>[]> {
    const out: ArrayLike<number>[] = [];
    for (const q of queries) out.push(await this.computeLogits(q, count, approximate));
    return out;
  }

  /** The bounds of logits a scan made approximate (the int8 engine); read right after the scan. */
  protected boundsOf(_logits: ArrayLike<number>): ScanBounds | undefined {
    return undefined;
  }

  async logitsOf(query: Float32Array, rows: number[]): Promise<Float64Array> {
    this.assertOpen();
    assertVectors(query, this.head.dim, 'query', 1);
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= this.count || this.alive[r] === 0) throw new RowIndexError(r, 'is not a live row');
    }
    await this.flush();
    const logits = await this.computeRowLogits(query, rows);
    // A row can die while its projection is awaited (removed, or lost to a fault): it scores nothing.
    rows.forEach((r, i) => {
      if (this.alive[r] === 0) logits[i] = -Infinity;
    });
    return logits;
  }

  /** Engines that can score a few rows cheaply override this; the default scores them all and picks. */
  protected async computeRowLogits(query: Float32Array, rows: number[]): Promise<Float64Array> {
    const all = await this.computeLogits(query, this.count);
    return Float64Array.from(rows, (r) => (r < all.length ? all[r] : -Infinity));
  }

  compact(): { scorer: Scorer; map: Int32Array } {
    this.assertOpen();
    if (!this.idle) throw new Error(`compact() needs an idle ${this.engine} scorer: await flush() first`);
    const map = new Int32Array(this.count).fill(-1);
    const rows: number[] = [];
    for (let i = 0; i < this.count; i++) {
      if (this.alive[i] === 1) {
        map[i] = rows.length;
        rows.push(i);
      }
    }
    const next = this.cloneWith(rows);
    next.adoptRows(rows.length);
    return { scorer: next, map };
  }

  fresh(): Scorer {
    this.assertOpen();
    return this.cloneWith([]);
  }

  /** Bookkeeping for rows a clone was born with (all live). */
  private adoptRows(n: number): void {
    this.grow(n);
    this.alive.fill(1, 0, n);
    this.count = n;
    this.liveCount = n;
  }

  private grow(n: number): void {
    if (n <= this.alive.length) return;
    const grown = new Uint8Array(Math.max(n, this.alive.length * 2));
    grown.set(this.alive);
    this.alive = grown;
  }

  /**
   * Marks rows [first, first + n) dead after a failed projection: scans skip
   * them, and the listener learns that their templates are missing.
   */
  protected markLost(first: number, n: number, err: Error): void {
    let lost = 0;
    for (let i = first; i < first + n; i++) {
      if (this.alive[i] === 0) continue;
      this.alive[i] = 0;
      this.liveCount--;
      this.lost.add(i);
      lost++;
    }
    this.base.onFault?.(err, lost);
  }

  async flush(): Promise<void> {}

  close(): Promise<void> {
    this.closing ??= this.release();
    return this.closing;
  }

  private async computeChecked(query: Float32Array, approximate = false): Promise<ArrayLike<number>> {
    this.assertOpen();
    assertVectors(query, this.head.dim, 'query', 1);
    await this.flush();
    return this.count === 0 ? new Float64Array(0) : this.computeLogits(query, this.count, approximate);
  }

  private assertOpen(): void {
    if (this.closing) throw new Error(`${this.engine} scorer is closed`);
  }

  /** The most rows the engine's storage can hold. */
  protected abstract engineCapacity(): number;
  protected abstract appendRows(rows: Float32Array, n: number, first: number): void;
  protected abstract clearRow(index: number): void;
  /**
   * Logits of the query against rows [0, n) with n <= count: the rows that
   * are complete when the scan starts. Removed rows may hold anything.
   */
  protected abstract computeLogits(query: Float32Array, count: number, approximate?: boolean): Promise<ArrayLike<number>>;
  /** A new scorer of this engine and these options holding copies of the given rows (in order), sharing compiled state. */
  protected abstract cloneWith(rows: number[]): BaseScorer;
  protected async release(): Promise<void> {}
}
