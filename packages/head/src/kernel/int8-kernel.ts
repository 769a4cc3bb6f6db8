/**
 * int8 rows and their scan (int8-module.ts): row i is q_i, P_i quantised per
 * column, and a scan gives out_i = sum_j v_j * relu(q_ij + r_j) as an i32.
 * Memory layout (bytes): [r (int16) | v (int16) | scratch for one chunk of
 * outputs | rows ...]; the rows sit last so the store grows in place.
 */
import { int8Module } from './int8-module.js';
import { ScanPool } from './scan-pool.js';
import { MAX_PAGES, PAGE } from './wasm-module.js';

const CHUNK = 32768;
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
    this.vOffset = this.width * 2;
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

  /** out[i] = sum_j v_j relu(q_ij + r_j) for the first `rows` rows. */
  run(r: Int16Array, out: Int32Array, rows = this.count): void {
    const count = Math.min(rows, this.count);
    const rv = new Int16Array(this.memory.buffer, this.rOffset, this.width);
    rv.fill(0);
    rv.set(r.subarray(0, this.hidden));
    const scratch = new Int32Array(this.memory.buffer, this.outOffset, CHUNK);
    const wb = this.width;
    for (let start = 0; start < count; start += CHUNK) {
      const n = Math.min(CHUNK, count - start);
      const parts = Math.max(1, Math.min(this.threads, Math.floor(n / MIN_ROWS_PER_THREAD)));
      const per = Math.ceil(n / parts);
      // Helpers take parts 1.., this thread takes part 0, then waits for the rest.
      for (let t = 1; t < parts; t++) {
        const from = t * per;
        this.pool.post(t - 1, { p: this.rowsOffset + (start + from) * wb, u: this.rOffset, w: this.vOffset, out: this.outOffset + from * 4, n: Math.min(per, n - from), hb: wb });
      }
      this.score8(this.rowsOffset + start * wb, this.rOffset, this.vOffset, this.outOffset, Math.min(per, n), wb);
      for (let t = 1; t < parts; t++) this.pool.join(t - 1);
      out.set(n === CHUNK ? scratch : scratch.subarray(0, n), start);
    }
  }
}
