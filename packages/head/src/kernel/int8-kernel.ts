/**
 * int8 rows and their scan (int8-module.ts): row i is q_i, P_i quantised per
 * column, and a scan gives out_i = sum_j v_j * relu(q_ij + r_j) as an i32.
 * Memory layout (bytes): [r (int16) x INT8_MAX_QUERIES | v (int16) | scratch
 * for one chunk of outputs | rows ...]; the rows sit last so the store grows
 * in place.
 */
import { int8Module } from './int8-module.js';
import { ScanPool } from './scan-pool.js';
import { MAX_PAGES, PAGE } from './wasm-encoding.js';

const CHUNK = 32768;
/** Queries one runMany pass serves; their r vectors sit side by side at the start of memory. */
export const INT8_MAX_QUERIES = 32;
/** Rows per block in runMany: 512 rows of 512 bytes stay in L2 while every query of the batch scans them. */
const BLOCK_ROWS = 512;
/** Below this many rows a chunk is scanned on the calling thread alone; a hand-off costs more than it saves. */
const MIN_ROWS_PER_THREAD = 8192;

/** Columns rounded up to whole 16-byte steps; the padding carries v = 0. */
export function int8Width(hidden: number): number {
  return Math.ceil(hidden / 16) * 16;
}

export class Int8Kernel {
  readonly width: number;
  private readonly memory: WebAssembly.Memory;
  private readonly score8: (q: number, r: number, v: number, out: number, n: number, wb: number) => void;
  private readonly rOffset = 0;
  private readonly vOffset: number;
  private readonly outOffset: number;
  private readonly rowsOffset: number;
  private capacity = 0;
  private count = 0;
  private readonly pool: ScanPool;

  constructor(readonly hidden: number, threads = 1) {
    this.width = int8Width(hidden);
    this.vOffset = this.width * 2 * INT8_MAX_QUERIES;
    this.outOffset = this.vOffset + this.width * 2;
    this.rowsOffset = this.outOffset + CHUNK * 4;
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const instance = new WebAssembly.Instance(int8Module(), { env: { memory: this.memory } });
    this.score8 = instance.exports.score8 as Int8Kernel['score8'];
    this.reserve(1024);
    this.pool = new ScanPool(this.memory, threads - 1, int8Module(), 'score8');
  }

  get threads(): number {
    return this.pool.size + 1;
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  get rows(): number {
    return this.count;
  }

  get maxRows(): number {
    return Math.floor((MAX_PAGES * PAGE - this.rowsOffset) / this.width);
  }

  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  private reserve(rows: number): void {
    if (rows <= this.capacity) return;
    if (rows > this.maxRows) throw new RangeError(`${rows} int8 rows do not fit in wasm32 memory (at most ${this.maxRows} of width ${this.width})`);
    const want = Math.min(this.maxRows, Math.max(rows, this.capacity * 2, 1024));
    const pages = Math.ceil((this.rowsOffset + want * this.width) / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (pages > 0) this.memory.grow(pages);
    this.capacity = want;
  }

  /** The head's weights for this scan: v (int16, `hidden` of them). */
  setWeights(v: Int16Array): void {
    const view = new Int16Array(this.memory.buffer, this.vOffset, this.width);
    view.fill(0);
    view.set(v.subarray(0, this.hidden));
  }

  /** Appends n rows of `hidden` int8 values (row-major). */
  append(rows: Int8Array, n: number): number {
    const first = this.count;
    this.reserve(first + n);
    const view = new Int8Array(this.memory.buffer, this.rowsOffset + first * this.width, n * this.width);
    if (this.width === this.hidden) view.set(rows.subarray(0, n * this.hidden));
    else for (let i = 0; i < n; i++) view.set(rows.subarray(i * this.hidden, (i + 1) * this.hidden), i * this.width);
    this.count += n;
    return first;
  }

  clear(index: number): void {
    new Int8Array(this.memory.buffer, this.rowsOffset + index * this.width, this.width).fill(0);
  }

  /** Drops every row (before the rows are quantised again on another scale). */
  reset(): void {
    this.count = 0;
  }

  /**
   * outs[q][i] = sum_j v_j relu(q_ij + rs[q]_j) for up to INT8_MAX_QUERIES
   * queries in one pass over the rows: each block of rows is read from memory
   * once and scanned by every query while it sits in cache. On the calling
   * thread.
   */
  runMany(rs: Int16Array[], outs: Int32Array[], rows = this.count): void {
    const count = Math.min(rows, this.count);
    const nq = rs.length;
    if (nq > INT8_MAX_QUERIES) throw new RangeError(`runMany takes at most ${INT8_MAX_QUERIES} queries, got ${nq}`);
    const wb = this.width;
    for (let q = 0; q < nq; q++) {
      const view = new Int16Array(this.memory.buffer, this.rOffset + q * wb * 2, wb);
      view.fill(0);
      view.set(rs[q].subarray(0, this.hidden));
    }
    const scratch = new Int32Array(this.memory.buffer, this.outOffset, CHUNK);
    for (let start = 0; start < count; start += BLOCK_ROWS) {
      const n = Math.min(BLOCK_ROWS, count - start);
      for (let q = 0; q < nq; q++) this.score8(this.rowsOffset + start * wb, this.rOffset + q * wb * 2, this.vOffset, this.outOffset + q * BLOCK_ROWS * 4, n, wb);
      for (let q = 0; q < nq; q++) outs[q].set(scratch.subarray(q * BLOCK_ROWS, q * BLOCK_ROWS + n), start);
    }
  }

  /** out[i] = sum_j v_j relu(q_ij + r_j) for the first `rows` rows. */
  run(r: Int16Array, out: Int32Array, rows = this.count): void {
    const count = Math.min(rows, this.count);
    const rv = new Int16Array(this.memory.buffer, this.rOffset, this.width);
    rv.fill(0);
    rv.set(r.subarray(0, this.hidden));
    const scratch = new Int32Array(this.memory.buffer, this.outOffset, CHUNK);
    const wb = this.width;
    this.pool.split(
      count,
      CHUNK,
      MIN_ROWS_PER_THREAD,
      (row, slot, n) => ({ p: this.rowsOffset + row * wb, u: this.rOffset, w: this.vOffset, out: this.outOffset + slot * 4, n, hb: wb }),
      (j) => this.score8(j.p, j.u, j.w, j.out, j.n, j.hb),
      (start, n) => out.set(n === CHUNK ? scratch : scratch.subarray(0, n), start),
    );
  }
}
