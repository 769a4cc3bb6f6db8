/**
 * The factorized engine's hot loop: for every stored row P_i,
 *   out_i = w · relu(P_i + u)
 * in WebAssembly SIMD (f32x4, four accumulators so adds don't wait on each
 * other). Plain JS runs this loop at ~14 ns per element on V8 (the float32
 * round trips and the relu branch defeat its optimiser); the wasm loop is
 * memory-bound instead, which is the best a scan over N x H floats can do.
 *
 * The module is emitted here byte by byte: it is one small function, and a
 * build step or a wat compiler dependency would cost more than it saves.
 */

import { Worker } from 'node:worker_threads';

const CHUNK = 32768;
const PAGE = 65536;
/** 4 GiB, wasm32's ceiling: shared memories must declare a maximum (it is only reserved address space). */
const MAX_PAGES = 65536;
/** Below this many rows a chunk is scanned on the calling thread alone; a hand-off costs more than it saves. */
const MIN_ROWS_PER_THREAD = 4096;
/** Queries one runMany pass serves; their u vectors sit side by side at the start of memory. */
export const MAX_QUERIES = 32;
/** Rows per block in runMany: 512 rows x 2 KB stay in L2 while every query of the batch scans them. */
const BLOCK_ROWS = 512;

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128, as i32.const wants (unsigned 64 would read back as -64). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, content: number[]): number[] {
  return [id, ...leb(content.length), ...content];
}

function name(s: string): number[] {
  return [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
}

// Opcodes used below.
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_EQZ = 0x45;
const I32_LT_U = 0x49;
const F32_ADD = 0x92;
const F32_STORE = 0x38;
const BLOCK = 0x02;
const LOOP = 0x03;
const BR = 0x0c;
const BR_IF = 0x0d;
const END = 0x0b;
const VOID = 0x40;
const SIMD = 0xfd;
const V128_LOAD = [SIMD, 0x00];
const V128_CONST_ZERO = [SIMD, 0x0c, ...new Array(16).fill(0)];
const F32X4_ADD = [SIMD, ...leb(0xe4)];
const F32X4_MUL = [SIMD, ...leb(0xe6)];
const F32X4_PMAX = [SIMD, ...leb(0xeb)];
const F32X4_EXTRACT = (lane: number) => [SIMD, 0x1f, lane];

// Parameters and locals.
const P = 0;
const U = 1;
const W = 2;
const OUT = 3;
const N = 4;
const HB = 5; // row width in bytes, a multiple of 64
const J = 6;
const ACC = [7, 8, 9, 10];

function load(base: number, offset: number): number[] {
  return [LOCAL_GET, base, LOCAL_GET, J, I32_ADD, ...V128_LOAD, 4, ...leb(offset)];
}

function buildModule(): Uint8Array {
  const body: number[] = [];
  body.push(BLOCK, VOID, LOOP, VOID);
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  for (const a of ACC) body.push(...V128_CONST_ZERO, LOCAL_SET, a);
  body.push(I32_CONST, 0, LOCAL_SET, J);
  body.push(LOOP, VOID);
  for (let k = 0; k < 4; k++) {
    // acc_k += pmax(0, P + u) * w   (pmax(0, v) = 0 < v ? v : 0 = relu(v))
    body.push(LOCAL_GET, ACC[k], ...V128_CONST_ZERO, ...load(P, 16 * k), ...load(U, 16 * k), ...F32X4_ADD, ...F32X4_PMAX);
    body.push(...load(W, 16 * k), ...F32X4_MUL, ...F32X4_ADD, LOCAL_SET, ACC[k]);
  }
  body.push(LOCAL_GET, J, I32_CONST, ...sleb(64), I32_ADD, LOCAL_TEE, J, LOCAL_GET, HB, I32_LT_U, BR_IF, 0, END);
  body.push(LOCAL_GET, OUT);
  body.push(LOCAL_GET, ACC[0], LOCAL_GET, ACC[1], ...F32X4_ADD, LOCAL_GET, ACC[2], LOCAL_GET, ACC[3], ...F32X4_ADD, ...F32X4_ADD);
  body.push(LOCAL_TEE, ACC[0], ...F32X4_EXTRACT(0));
  for (let lane = 1; lane < 4; lane++) body.push(LOCAL_GET, ACC[0], ...F32X4_EXTRACT(lane), F32_ADD);
  body.push(F32_STORE, 2, 0);
  body.push(LOCAL_GET, P, LOCAL_GET, HB, I32_ADD, LOCAL_SET, P);
  body.push(LOCAL_GET, OUT, I32_CONST, 4, I32_ADD, LOCAL_SET, OUT);
  body.push(LOCAL_GET, N, I32_CONST, 1, I32_SUB, LOCAL_SET, N);
  body.push(BR, 0, END, END, END);
  const locals = [2, 1, 0x7f, 4, 0x7b]; // one i32, four v128
  const code = [...locals, ...body];

  // The memory is imported and shared so helper threads can scan other rows of the same store.
  const memoryImport = [...name('env'), ...name('memory'), 2, 3, ...leb(1), ...leb(MAX_PAGES)];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 6, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...section(2, [1, ...memoryImport]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('score'), 0, 0]),
    ...section(10, [1, ...leb(code.length), ...code]),
  ];
  return new Uint8Array(bytes);
}

let compiled: WebAssembly.Module | undefined;

function module(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(buildModule());
  return compiled;
}

/** Rounds H up so every row is a whole number of 4 x f32x4 steps; the padding carries w = 0. */
export function paddedWidth(hidden: number): number {
  return Math.ceil(hidden / 16) * 16;
}

// Control words shared with each helper: [job seq, done seq, p, u, w, out, n, hb]. seq -1 = exit.
const SEQ = 0;
const DONE = 1;
const ARGS = 2;

/** A helper thread: waits on its control word, scans the rows it is handed, signals done. */
const HELPER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, control } = workerData;
const ctrl = new Int32Array(control);
const score = new WebAssembly.Instance(module, { env: { memory } }).exports.score;
let seen = 0;
for (;;) {
  Atomics.wait(ctrl, ${SEQ}, seen);
  seen = Atomics.load(ctrl, ${SEQ});
  if (seen < 0) break;
  score(ctrl[${ARGS}], ctrl[${ARGS + 1}], ctrl[${ARGS + 2}], ctrl[${ARGS + 3}], ctrl[${ARGS + 4}], ctrl[${ARGS + 5}]);
  Atomics.store(ctrl, ${DONE}, seen);
  Atomics.notify(ctrl, ${DONE});
}
`;

interface Helper {
  worker: Worker;
  ctrl: Int32Array;
  seq: number;
}

/**
 * Row storage plus the scan. Memory layout (bytes): [u | w | scratch for one
 * chunk of outputs | P rows ...]; the rows sit last so the store grows in
 * place. With threads > 1 each chunk is split between the calling thread and
 * helper threads that share the memory.
 */
export class ReluDotKernel {
  readonly width: number;
  private readonly memory: WebAssembly.Memory;
  private readonly score: (p: number, u: number, w: number, out: number, n: number, hb: number) => void;
  private readonly helpers: Helper[] = [];
  private readonly uOffset = 0;
  private readonly wOffset: number;
  private readonly outOffset: number;
  private readonly rowsOffset: number;
  private capacity = 0;
  private count = 0;

  constructor(readonly hidden: number, w: Float32Array, threads = 1) {
    this.width = paddedWidth(hidden);
    this.wOffset = this.width * 4 * MAX_QUERIES;
    this.outOffset = this.wOffset + this.width * 4;
    this.rowsOffset = this.outOffset + CHUNK * 4;
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const instance = new WebAssembly.Instance(module(), { env: { memory: this.memory } });
    this.score = instance.exports.score as ReluDotKernel['score'];
    this.reserve(1024);
    new Float32Array(this.memory.buffer, this.wOffset, this.width).set(w);
    for (let t = 1; t < threads; t++) {
      const control = new SharedArrayBuffer(4 * (ARGS + 6));
      const worker = new Worker(HELPER_SOURCE, { eval: true, workerData: { module: module(), memory: this.memory, control } });
      worker.unref();
      this.helpers.push({ worker, ctrl: new Int32Array(control), seq: 0 });
    }
  }

  get rows(): number {
    return this.count;
  }

  get threads(): number {
    return this.helpers.length + 1;
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
    for (let start = 0; start < count; start += CHUNK) {
      const n = Math.min(CHUNK, count - start);
      const parts = Math.max(1, Math.min(this.threads, Math.floor(n / MIN_ROWS_PER_THREAD)));
      const per = Math.ceil(n / parts);
      // Helpers take parts 1.., this thread takes part 0, then waits for the rest.
      for (let t = 1; t < parts; t++) {
        const from = t * per;
        const m = Math.min(per, n - from);
        this.post(this.helpers[t - 1], this.rowsOffset + (start + from) * hb, this.outOffset + from * 4, m, hb);
      }
      this.score(this.rowsOffset + start * hb, this.uOffset, this.wOffset, this.outOffset, Math.min(per, n), hb);
      for (let t = 1; t < parts; t++) this.join(this.helpers[t - 1]);
      out.set(n === CHUNK ? scratch : scratch.subarray(0, n), start);
    }
  }

  private post(h: Helper, p: number, out: number, n: number, hb: number): void {
    const c = h.ctrl;
    c[ARGS] = p;
    c[ARGS + 1] = this.uOffset;
    c[ARGS + 2] = this.wOffset;
    c[ARGS + 3] = out;
    c[ARGS + 4] = n;
    c[ARGS + 5] = hb;
    Atomics.store(c, SEQ, ++h.seq);
    Atomics.notify(c, SEQ);
  }

  private join(h: Helper): void {
    for (;;) {
      const done = Atomics.load(h.ctrl, DONE);
      if (done === h.seq) return;
      Atomics.wait(h.ctrl, DONE, done);
    }
  }

  async close(): Promise<void> {
    for (const h of this.helpers) {
      Atomics.store(h.ctrl, SEQ, -1);
      Atomics.notify(h.ctrl, SEQ);
    }
    await Promise.all(this.helpers.map((h) => h.worker.terminate()));
    this.helpers.length = 0;
  }
}
