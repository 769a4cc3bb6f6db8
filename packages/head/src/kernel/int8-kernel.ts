/**
 * int8 rows and their scan (int8-module.ts): row i is q_i, P_i quantised per
 * column, and a scan gives out_i = sum_j v_j * relu(q_ij + r_j) as an i32,
 * or for one query the logit t * out_i + base and each block's largest bound
 * (logit plus the row's own slack, given with the row).
 * Memory layout: int8-layout.ts, then the query projection's region (when
 * asked for: query-projection.ts), then the rows.
 */
import { BLOCK_ROWS, CHUNK, INT8_MAX_QUERIES, PAIR_CHUNK, SINGLE_CHUNK, int8Layout, rowStart, type Int8Layout } from './int8-layout.js';
import { INT8_GROUP, int8Module } from './int8-module.js';
import { relaxedModule, relaxedSimd } from './relaxed-module.js';
import { ScanPool } from './scan-pool.js';
import { QueryProjection, type ProjectionWeights } from './query-projection.js';
import { MAX_PAGES, PAGE, align64 } from './wasm-encoding.js';

export { BLOCK_ROWS, INT8_MAX_QUERIES } from './int8-layout.js';
/** Below this many rows a chunk is scanned on the calling thread alone; a hand-off costs more than it saves. */
const MIN_ROWS_PER_THREAD = 8192;
/** Rows a thread takes at a time from a shared single-query scan (a whole number of blocks). */
const SHARED_BLOCK = 128 * BLOCK_ROWS;

/** Columns rounded up to whole 16-byte steps; the padding carries v = 0. */
export function int8Width(hidden: number): number {
  return Math.ceil(hidden / 16) * 16;
}

export class Int8Kernel {
  readonly width: number;
  private readonly memory: WebAssembly.Memory;
  private readonly score8: (q: number, r: number, v: number, out: number, n: number, wb: number) => void;
  private readonly many8: (q: number, r: number, v: number, out: number, n: number, groups: number) => void;
  private readonly layout: Int8Layout;
  private readonly rOffset: number;
  private readonly vOffset: number;
  private readonly outOffset: number;
  private readonly rowsOffset: number;
  /** The last single-query scan's largest bound (logit + rowSlack) per block of BLOCK_ROWS rows. */
  private blockMax = new Float64Array(1024);
  /** Each row's own slack (append's), the source of the layout's slack area. */
  private slack = new Float32Array(1024);
  /** Which chunk of rows the layout's slack area holds (a scan of more than one chunk copies each in turn). */
  private slackChunk = 0;
  private capacity = 0;
  private count = 0;
  private readonly pool: ScanPool;
  private v = new Int16Array(0);
  private readonly projection: QueryProjection | undefined;

  /**
   * `relaxed`: the relaxed-SIMD kernel (relaxed-module.ts), for 7-bit rows
   * and offsets in [-64, 64] with int8 weights; the caller checks that the
   * runtime has it. Otherwise simd128 with int16 offsets and weights.
   * `projection`: the head's W1, for project() on this kernel's threads.
   */
  constructor(readonly hidden: number, threads = 1, readonly relaxed = false, projection?: ProjectionWeights) {
    this.width = int8Width(hidden);
    this.layout = int8Layout(this.width);
    this.rOffset = this.layout.r;
    this.vOffset = this.layout.v;
    this.outOffset = this.layout.out;
    const projectionOffset = align64(this.layout.rows);
    this.rowsOffset = projectionOffset + QueryProjection.bytes(projection);
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const module = relaxed ? relaxedModule(this.width) : int8Module(this.width);
    const fns = relaxed ? ['score7', 'many7', 'dot'] : ['score8', 'many8', 'dot'];
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.score8 = instance.exports[fns[0]] as Int8Kernel['score8'];
    this.many8 = instance.exports[fns[1]] as Int8Kernel['many8'];
    this.reserve(1024);
    this.pool = new ScanPool(this.memory, threads - 1, module, fns);
    this.projection = QueryProjection.inKernel(this.memory, projectionOffset, projection, this.pool, instance, fns);
  }

  /** u = A q for nq queries (QueryProjection.project), on this kernel's threads; needs the projection weights. */
  project(x: Float32Array, nq: number): Float32Array {
    if (!this.projection) throw new Error('this kernel was built without the projection weights');
    return this.projection.project(x, nq);
  }

  /**
   * Whether the relaxed-SIMD kernel gives exact sums at this width on this
   * runtime: '' when it does, else why not. Run before it is used: V8 11.3
   * (Node 20) behind its experimental flag compiles the fused dot-add
   * (i32x4.relaxed_dot_i8x16_i7x16_add_s) wrong (relaxed-module.ts), so a
   * runtime that compiles relaxed SIMD is not trusted until its sums are.
   */
  static relaxedProblem(hidden: number): string {
    if (!relaxedSimd()) return `this runtime (Node ${process.versions.node}) does not compile relaxed SIMD${process.versions.node.startsWith('20.') ? ' without --experimental-wasm-relaxed-simd' : ''}`;
    const k = new Int8Kernel(hidden, 1, true);
    const n = 40;
    const rows = Int8Array.from({ length: n * hidden }, (_, i) => ((i * 7919) % 128) - 64);
    const v = Int16Array.from({ length: hidden }, (_, j) => ((j * 37) % 255) - 127);
    const rs = [0, 1, 2, 3, 4].map((s) => Int16Array.from({ length: hidden }, (_, j) => ((j * 13 + s * 29) % 129) - 64));
    k.setWeights(v);
    k.append(rows, n);
    const outs = rs.map(() => new Int32Array(n));
    k.runMany(rs, outs);
    const alone = new Int32Array(n);
    k.run(rs[0], alone);
    for (let q = 0; q < rs.length; q++) {
      for (let i = 0; i < n; i++) {
        let want = 0;
        for (let j = 0; j < hidden; j++) want += v[j] * Math.max(0, rows[i * hidden + j] + rs[q][j]);
        if (outs[q][i] !== want || (q === 0 && alone[i] !== want)) return `its relaxed SIMD kernel gave ${q === 0 && alone[i] !== want ? alone[i] : outs[q][i]} where the sum is ${want} (V8 ${process.versions.v8}): not used`;
      }
    }
    return '';
  }

  get threads(): number {
    return this.pool.size + 1;
  }

  /** Wakes the helper threads for a scan that is coming, keeping them awake up to `us` µs (ScanPool.warm). */
  warm(us: number): void {
    this.pool.warm(us);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  get rows(): number {
    return this.count;
  }

  get maxRows(): number {
    // Whole pairs (int8-layout.ts).
    return 2 * Math.floor((MAX_PAGES * PAGE - this.rowsOffset) / (2 * this.width));
  }

  /** The wasm memory and the rows' slack kept beside it. */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength + this.slack.byteLength;
  }

  private reserve(rows: number): void {
    if (rows <= this.capacity) return;
    if (rows > this.maxRows) throw new RangeError(`${rows} int8 rows do not fit in wasm32 memory (at most ${this.maxRows} of width ${this.width})`);
    const want = Math.min(this.maxRows, Math.ceil(Math.max(rows, this.capacity * 2, 1024) / 2) * 2);
    const pages = Math.ceil((this.rowsOffset + want * this.width) / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (pages > 0) this.memory.grow(pages);
    this.capacity = want;
  }

  /** The head's weights for this scan: v (`hidden` of them; within [-127, 127] for the relaxed kernel). */
  setWeights(v: Int16Array): void {
    this.v = Int16Array.from(v.subarray(0, this.hidden));
    this.vector(this.vOffset).set(this.v);
  }

  /**
   * Writes query q's offsets where the kernel reads them and returns the
   * constant its sums need. simd128 takes c = -r and adds d: relu(x + r) =
   * max(x, c) + r for every int8 x while -r is in [-127, 127]; beyond, the
   * relu is 0 for every x (c = 127, d = -127) or linear (c = -128, d = r).
   * The relaxed kernel takes r as it is.
   */
  private setOffsets(q: number, r: Int16Array): number {
    const view = this.vector(this.rAt(q));
    if (this.relaxed) {
      view.set(r.subarray(0, this.hidden));
      return 0;
    }
    const v = this.v;
    let d = 0;
    for (let j = 0; j < this.hidden; j++) {
      const rj = r[j];
      if (rj <= -128) {
        view[j] = 127;
        d -= 127 * v[j];
      } else {
        view[j] = rj >= 128 ? -128 : -rj;
        d += v[j] * rj;
      }
    }
    // The kernel's i32 sums wrap; d is exact here (|d| < 2^53) and wraps with them.
    return d | 0;
  }

  /** A zeroed r or v vector at this offset, as the kernel reads it (int8 for the relaxed kernel, else int16). */
  private vector(offset: number): Int8Array | Int16Array {
    const view = this.relaxed ? new Int8Array(this.memory.buffer, offset, this.width) : new Int16Array(this.memory.buffer, offset, this.width);
    view.fill(0);
    return view;
  }

  /** Where query q's offsets sit (the relaxed kernel's are int8: half the bytes). */
  private rAt(q: number): number {
    return this.rOffset + q * this.width * (this.relaxed ? 1 : 2);
  }

  /**
   * Appends n rows of `hidden` int8 values (row-major), each into its place
   * in its pair (int8-layout.ts), with each row's own slack (the bound on its
   * quantisation error; zeros when not given), which a single-query scan adds
   * to its logit for the block maxima.
   */
  append(rows: Int8Array, n: number, slack?: Float32Array): number {
    const first = this.count;
    this.reserve(first + n);
    if (this.slack.length < first + n) {
      const grown = new Float32Array(Math.max(first + n, this.slack.length * 2));
      grown.set(this.slack.subarray(0, first));
      this.slack = grown;
    }
    if (slack) this.slack.set(slack.subarray(0, n), first);
    else this.slack.fill(0, first, first + n);
    this.placeSlack(first, n);
    const H = this.hidden;
    const wb = this.width;
    const memory = new Int8Array(this.memory.buffer, this.rowsOffset);
    for (let i = 0; i < n; i++) {
      const at = rowStart(first + i, wb);
      for (let j = 0; j < wb; j += PAIR_CHUNK) {
        const to = at + 2 * j;
        const from = i * H + j;
        if (j + PAIR_CHUNK <= H) memory.set(rows.subarray(from, from + PAIR_CHUNK), to);
        else for (let c = 0; c < PAIR_CHUNK; c++) memory[to + c] = j + c < H ? rows[from + c] : 0;
      }
    }
    this.count += n;
    return first;
  }

  clear(index: number): void {
    const memory = new Int8Array(this.memory.buffer, this.rowsOffset);
    const at = rowStart(index, this.width);
    for (let j = 0; j < this.width; j += PAIR_CHUNK) memory.fill(0, at + 2 * j, at + 2 * j + PAIR_CHUNK);
  }

  /** Drops every row (before the rows are quantised again on another scale). */
  reset(): void {
    this.count = 0;
  }

  /** Each row's own slack, as append() was given it (a view: valid until the next append). */
  rowSlack(): Float32Array {
    return this.slack.subarray(0, this.count);
  }

  /** Copies rows first .. first + n - 1's slack into the layout's slack area, where it holds their chunk. */
  private placeSlack(first: number, n: number): void {
    const start = this.slackChunk * SINGLE_CHUNK;
    const from = Math.max(first, start);
    const to = Math.min(first + n, start + SINGLE_CHUNK);
    if (to > from) new Float32Array(this.memory.buffer, this.layout.slack, SINGLE_CHUNK).set(this.slack.subarray(from, to), from - start);
  }

  /**
   * outs[q][i] = sum_j v_j relu(q_ij + rs[q]_j) for up to INT8_MAX_QUERIES
   * queries in one pass over the rows (many8: four queries per look at a
   * row, a block of rows kept in cache for every group of four), split over
   * the threads as run() is. With `affine`, outs are logits: t * sum + bases[q].
   */
  runMany(rs: Int16Array[], outs: Int32Array[] | Float64Array[], rows = this.count, affine?: Affine): void {
    const count = Math.min(rows, this.count);
    const nq = rs.length;
    if (nq > INT8_MAX_QUERIES) throw new RangeError(`runMany takes at most ${INT8_MAX_QUERIES} queries, got ${nq}`);
    const wb = this.width;
    const groups = Math.ceil(nq / INT8_GROUP);
    // A last group short of four scores copies of the first query; those sums are not read.
    const ds = Array.from({ length: groups * INT8_GROUP }, (_, q) => this.setOffsets(q, rs[q < nq ? q : 0]));
    const scratch = new Int32Array(this.memory.buffer, this.outOffset, CHUNK * INT8_MAX_QUERIES);
    // Each part of a chunk writes its rows' sums at its own place: [group][row][4 queries].
    const parts: [slot: number, n: number][] = [];
    this.pool.split(
      count,
      CHUNK,
      MIN_ROWS_PER_THREAD,
      (row, slot, n) => {
        parts.push([slot, n]);
        return { p: this.rowsOffset + row * wb, u: this.rOffset, w: this.vOffset, out: this.outOffset + slot * groups * 16, n, hb: groups };
      },
      (j) => this.many8(j.p, j.u, j.w, j.out, j.n, j.hb),
      (start, _n) => {
        for (const [slot, m] of parts) {
          const base = slot * groups * INT8_GROUP;
          for (let q = 0; q < nq; q++) {
            const from = base + Math.floor(q / INT8_GROUP) * m * INT8_GROUP + (q % INT8_GROUP);
            if (affine) copyAffine(outs[q] as Float64Array, start + slot, scratch, from, INT8_GROUP, m, ds[q], affine.t, affine.bases[q], this.manyBlocks(q, count), this.slack);
            else copySums(outs[q] as Int32Array, start + slot, scratch, from, INT8_GROUP, m, ds[q]);
          }
        }
        parts.length = 0;
      },
      1,
      BLOCK_ROWS,
    );
  }

  /** Each runMany query's block maxima (with `affine`), as blocks() gives a single query's. */
  private readonly manyBlockMax: Float64Array[] = [];

  private manyBlocks(q: number, count: number): Float64Array {
    const want = Math.ceil(count / BLOCK_ROWS);
    let b = this.manyBlockMax[q];
    if (!b || b.length < want) this.manyBlockMax[q] = b = new Float64Array(Math.max(want, (b?.length ?? 0) * 2, 64));
    return b;
  }

  /** Query q's block maxima of the last runMany with `affine` (valid until the next). */
  blocksOf(q: number): Float64Array {
    return this.manyBlockMax[q];
  }

  /**
   * out[i] = sum_j v_j relu(q_ij + r_j) for the first `rows` rows; with
   * `affine`, out is logits: t * sum + bases[0], and blocks() their largest bound
   * per block of BLOCK_ROWS rows, until the next scan.
   */
  run(r: Int16Array, out: Int32Array | Float64Array, rows = this.count, affine?: Affine): void {
    this.scanChunks(r, rows, affine, (start, got) => {
      if (out instanceof Float64Array) out.set(got, start);
      else for (let i = 0; i < got.length; i++) out[start + i] = got[i];
    });
  }

  /**
   * run() with `affine`, the logits left where the kernel wrote them: a view
   * of its scratch, valid until the next scan (no copy of 8 bytes a row
   * after the scan). Rows past one chunk's worth are copied into `spill`.
   */
  logitsOf(r: Int16Array, rows: number, affine: Affine, spill: Float64Array): Float64Array {
    const count = Math.min(rows, this.count);
    if (count > SINGLE_CHUNK) {
      this.run(r, spill, count, affine);
      return spill.subarray(0, count);
    }
    this.scanChunks(r, count, affine, () => {});
    return new Float64Array(this.memory.buffer, this.outOffset, count);
  }

  /** The single-query scan, a chunk at a time; `collect` sees each chunk's f64 outputs in the scratch. */
  private scanChunks(r: Int16Array, rows: number, affine: Affine | undefined, collect: (start: number, got: Float64Array) => void): void {
    const count = Math.min(rows, this.count);
    const d = this.setOffsets(0, r);
    // The kernel writes t * (d + sum) + base in f64: exact integers for t = 1, base = 0 (|sum| < 2^31).
    new Float64Array(this.memory.buffer, this.layout.affine, 2).set(affine ? [affine.t, affine.bases[0]] : [1, 0]);
    const scratch = new Float64Array(this.memory.buffer, this.outOffset, SINGLE_CHUNK);
    const blocks = new Float64Array(this.memory.buffer, this.layout.blocks, SINGLE_CHUNK / BLOCK_ROWS);
    const nBlocks = Math.ceil(count / BLOCK_ROWS);
    if (this.blockMax.length < nBlocks) this.blockMax = new Float64Array(Math.max(nBlocks, this.blockMax.length * 2));
    const wb = this.width;
    for (let start = 0; start < count; start += SINGLE_CHUNK) {
      const n = Math.min(SINGLE_CHUNK, count - start);
      if (this.slackChunk !== start / SINGLE_CHUNK) {
        this.slackChunk = start / SINGLE_CHUNK;
        this.placeSlack(start, SINGLE_CHUNK);
      }
      const job = { p: this.rowsOffset + start * wb, u: this.rOffset, w: this.vOffset, out: this.outOffset, n, hb: d };
      const scan = (j: typeof job) => this.score8(j.p, j.u, j.w, j.out, j.n, j.hb);
      if (this.pool.size === 0 || n < 2 * MIN_ROWS_PER_THREAD) scan(job);
      else this.pool.shareRows(job, wb, 8, SHARED_BLOCK, scan);
      collect(start, n === SINGLE_CHUNK ? scratch : scratch.subarray(0, n));
      this.blockMax.set(blocks.subarray(0, Math.ceil(n / BLOCK_ROWS)), start / BLOCK_ROWS);
    }
  }

  /** The last single-query scan's largest bound (logit + the row's slack) per block of BLOCK_ROWS rows (valid until the next scan). */
  blocks(): Float64Array {
    return this.blockMax;
  }
}

/** Sums turned into logits as they leave the scratch: t * sum + base. */
export interface Affine {
  t: number;
  bases: number[];
}

// Two copies, one per output type, so each loop stays monomorphic.
function copySums(o: Int32Array, at: number, src: Int32Array, from: number, stride: number, n: number, d: number): void {
  for (let i = 0; i < n; i++) o[at + i] = (src[from + i * stride] + d) | 0;
}

/** Also each block's largest bound (logit + the row's slack) into blockMax, as the single-query kernel writes them (`at` starts a block; 16 = BLOCK_ROWS). */
function copyAffine(o: Float64Array, at: number, src: Int32Array, from: number, stride: number, n: number, d: number, t: number, base: number, blockMax: Float64Array, slack: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const l = t * ((src[from + i * stride] + d) | 0) + base;
    o[at + i] = l;
    const u = l + slack[at + i];
    const b = (at + i) >> 4;
    if (((at + i) & 15) === 0 || u > blockMax[b]) blockMax[b] = u;
  }
}
