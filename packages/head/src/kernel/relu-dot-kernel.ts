/**
 * The factorized engine's rows and its scan: for every stored row P_i,
 *   out_i = w · relu(P_i + u)
 * run by the wasm function of wasm-module.ts over a shared memory, split
 * between the calling thread and the helpers of a ScanPool.
 */

import { ScanPool } from './scan-pool.js';
import { MAX_PAGES, PAGE, SCAN_FUNCTIONS, paddedWidth, scanModule } from './wasm-module.js';
import { QueryProjection, type ProjectionWeights } from './query-projection.js';

const CHUNK = 32768;
/** Below this many rows a chunk is scanned on the calling thread alone; a hand-off costs more than it saves. */
const MIN_ROWS_PER_THREAD = 4096;
/** Queries one runMany pass serves; their u vectors sit side by side at the start of memory. */
export const MAX_QUERIES = 32;
/** Rows per block in runMany: 512 rows x 2 KB stay in L2 while every query of the batch scans them. */
const BLOCK_ROWS = 512;

/**
 * Row storage plus the scan. Memory layout (bytes): [u | w | scratch for one
 * chunk of outputs | the query projection's region, when asked for | P rows
 * ...]; the rows sit last so the store grows in place. With threads > 1 each
 * chunk is split between the calling thread and helper threads that share
 * the memory.
 */
export class ReluDotKernel {
  readonly width: number;
  private readonly memory: WebAssembly.Memory;
  private readonly score: (p: number, u: number, w: number, out: number, n: number, hb: number) => void;
  private readonly pool: ScanPool;
  private readonly uOffset = 0;
  private readonly wOffset: number;
  private readonly outOffset: number;
  private readonly rowsOffset: number;
  private capacity = 0;
  private count = 0;
  private readonly projection: QueryProjection | undefined;

  /** `projection`: the head's W1, for project() on this kernel's memory and threads. */
  constructor(readonly hidden: number, w: Float32Array, threads = 1, projection?: ProjectionWeights) {
    this.width = paddedWidth(hidden);
    this.wOffset = this.width * 4 * MAX_QUERIES;
    this.outOffset = this.wOffset + this.width * 4;
    const projectionOffset = this.outOffset + CHUNK * 4;
    this.rowsOffset = projectionOffset + QueryProjection.bytes(projection);
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const instance = new WebAssembly.Instance(scanModule(), { env: { memory: this.memory } });
    this.score = instance.exports.score as ReluDotKernel['score'];
    this.reserve(1024);
    new Float32Array(this.memory.buffer, this.wOffset, this.width).set(w);
    this.pool = new ScanPool(this.memory, threads - 1, scanModule(), SCAN_FUNCTIONS);
    this.projection = QueryProjection.inKernel(this.memory, projectionOffset, projection, this.pool, instance, SCAN_FUNCTIONS);
  }

  /** u = A q for nq queries (QueryProjection.project), on this kernel's threads; needs the projection weights. */
  project(x: Float32Array, nq: number): Float32Array {
    if (!this.projection) throw new Error('this kernel was built without the projection weights');
    return this.projection.project(x, nq);
  }

  get rows(): number {
    return this.count;
  }

  get threads(): number {
    return this.pool.size + 1;
  }

  /**
   * The most rows this kernel can hold: what fits between the row offset and
   * wasm32's 4 GiB ceiling. add() refuses beyond it, before memory.grow would.
   */
  get maxRows(): number {
    return Math.floor((MAX_PAGES * PAGE - this.rowsOffset) / (this.width * 4));
  }

  /** Bytes of wasm memory committed (rows, padding and the scan's scratch). */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  private reserve(rows: number): void {
    if (rows <= this.capacity) return;
    if (rows > this.maxRows) throw new RangeError(`${rows} rows do not fit in wasm32 memory (at most ${this.maxRows} of width ${this.width})`);
    const want = Math.min(this.maxRows, Math.max(rows, this.capacity * 2, 1024));
    const bytes = this.rowsOffset + want * this.width * 4;
    const pages = Math.ceil(bytes / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (pages > 0) this.memory.grow(pages);
    this.capacity = want;
  }

  /** Appends n rows of `hidden` floats (row-major); returns the first index. */
  append(rows: Float32Array, n: number): number {
    const first = this.count;
    this.reserve(first + n);
    const view = new Float32Array(this.memory.buffer, this.rowsOffset + first * this.width * 4, n * this.width);
    if (this.width === this.hidden) view.set(rows.subarray(0, n * this.hidden));
    else for (let i = 0; i < n; i++) view.set(rows.subarray(i * this.hidden, (i + 1) * this.hidden), i * this.width);
    this.count += n;
    return first;
  }

  /** Appends n rows of zeros: they keep later rows at their indices when a projection failed. */
  appendZeros(n: number): number {
    const first = this.count;
    this.reserve(first + n);
    new Float32Array(this.memory.buffer, this.rowsOffset + first * this.width * 4, n * this.width).fill(0);
    this.count += n;
    return first;
  }

  /** Appends the given rows of another kernel of the same width, in order (compaction). */
  appendFrom(src: ReluDotKernel, rows: ArrayLike<number>): void {
    if (src.width !== this.width) throw new RangeError(`row width ${src.width} differs from ${this.width}`);
    const first = this.count;
    this.reserve(first + rows.length);
    const from = new Float32Array(src.memory.buffer, src.rowsOffset, src.count * src.width);
    const to = new Float32Array(this.memory.buffer, this.rowsOffset, (first + rows.length) * this.width);
    const w = this.width;
    // Runs of consecutive rows are one copy each: after a few removals that is nearly the whole store at once.
    for (let i = 0; i < rows.length; ) {
      let j = i + 1;
      while (j < rows.length && rows[j] === rows[j - 1] + 1) j++;
      to.set(from.subarray(rows[i] * w, (rows[j - 1] + 1) * w), (first + i) * w);
      i = j;
    }
    this.count += rows.length;
  }

  /** Overwrites row i with zeros so nothing derived from a removed person stays in memory. */
  clear(index: number): void {
    new Float32Array(this.memory.buffer, this.rowsOffset + index * this.width * 4, this.width).fill(0);
  }

  /** Row i's floats (a view: valid until the store grows). */
  rowView(index: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.rowsOffset + index * this.width * 4, this.hidden);
  }

  /**
   * w · relu(P_i + u) for the given rows by the scan's own wasm function: bit
   * for bit what run() gives them. u is written where the scan reads it once,
   * then each row is scored in place.
   */
  rowScores(rows: ArrayLike<number>, u: Float32Array): Float32Array {
    const hb = this.width * 4;
    const uv = new Float32Array(this.memory.buffer, this.uOffset, this.width);
    uv.fill(0);
    uv.set(u.subarray(0, this.hidden));
    const out = new Float32Array(this.memory.buffer, this.outOffset, 1);
    const got = new Float32Array(rows.length);
    for (let k = 0; k < rows.length; k++) {
      this.score(this.rowsOffset + rows[k] * hb, this.uOffset, this.wOffset, this.outOffset, 1, hb);
      got[k] = out[0];
    }
    return got;
  }

  /** w · relu(P_i + u) for one row, in plain JS: for a handful of rows this beats a scan. */
  rowDot(index: number, u: Float32Array, w: Float32Array): number {
    const p = new Float32Array(this.memory.buffer, this.rowsOffset + index * this.width * 4, this.hidden);
    let s = 0;
    for (let j = 0; j < this.hidden; j++) {
      const v = p[j] + u[j];
      if (v > 0) s += w[j] * v;
    }
    return s;
  }

  /**
   * outs[q][i] = w · relu(P_i + us[q]) for up to MAX_QUERIES queries in one pass
   * over the rows: each block of rows is read from memory once and scanned by
   * every query while it sits in cache, so a batch costs about one query's
   * memory traffic. Runs on the calling thread. Scans the first `rows` rows.
   */
  runMany(us: Float32Array[], outs: Float32Array[], rows = this.count): void {
    const count = Math.min(rows, this.count);
    const nq = us.length;
    if (nq > MAX_QUERIES) throw new RangeError(`runMany takes at most ${MAX_QUERIES} queries, got ${nq}`);
    const hb = this.width * 4;
    for (let q = 0; q < nq; q++) new Float32Array(this.memory.buffer, this.uOffset + q * hb, this.hidden).set(us[q].subarray(0, this.hidden));
    const scratch = new Float32Array(this.memory.buffer, this.outOffset, CHUNK);
    for (let start = 0; start < count; start += BLOCK_ROWS) {
      const n = Math.min(BLOCK_ROWS, count - start);
      for (let q = 0; q < nq; q++) {
        this.score(this.rowsOffset + start * hb, this.uOffset + q * hb, this.wOffset, this.outOffset + q * BLOCK_ROWS * 4, n, hb);
      }
      for (let q = 0; q < nq; q++) outs[q].set(scratch.subarray(q * BLOCK_ROWS, q * BLOCK_ROWS + n), start);
    }
  }

  /** out[i] = w · relu(P_i + u) for the first `rows` stored rows (all by default). */
  run(u: Float32Array, out: Float32Array, rows = this.count): void {
    const count = Math.min(rows, this.count);
    new Float32Array(this.memory.buffer, this.uOffset, this.hidden).set(u.subarray(0, this.hidden));
    const hb = this.width * 4;
    const scratch = new Float32Array(this.memory.buffer, this.outOffset, CHUNK);
    this.pool.split(
      count,
      CHUNK,
      MIN_ROWS_PER_THREAD,
      (row, slot, n) => ({ p: this.rowsOffset + row * hb, u: this.uOffset, w: this.wOffset, out: this.outOffset + slot * 4, n, hb }),
      (j) => this.score(j.p, j.u, j.w, j.out, j.n, j.hb),
      (start, n) => out.set(n === CHUNK ? scratch : scratch.subarray(0, n), start),
    );
  }

  /** Wakes the helper threads for a scan that is coming, keeping them awake up to `us` µs (ScanPool.warm). */
  warm(us: number): void {
    this.pool.warm(us);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
