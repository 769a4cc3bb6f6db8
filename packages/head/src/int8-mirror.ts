import { BLOCK_ROWS, INT8_MAX_QUERIES, Int8Kernel } from './kernel/int8-kernel.js';
import type { ProjectionWeights } from './kernel/query-projection.js';

/** Rows needed before the scale is fitted; fewer are scanned in float32 alone. */
export const INT8_FIT_MIN_ROWS = 1024;
/** Rows sampled per column to fit the scale. */
const FIT_SAMPLE = 8192;
/** The two integer layouts (int8-kernel.ts): simd128, and relaxed SIMD's 7-bit rows. */
interface Levels {
  /** q's range */
  qMin: number;
  qMax: number;
  /** |v_j| at most this: 12 bits for simd128, so sum_j |v_j| relu(...) stays an i32 for any sane query; int8 for the dot of relaxed SIMD. */
  vMax: number;
  /** r_j is clamped to [-rMax, rMax]; where it is clamped the clamp is exact or is counted in the bound. */
  rMax: number;
}
const SIMD128: Levels = { qMin: -128, qMax: 127, vMax: 2047, rMax: 32000 };
// q + r in [-128, 127]: exact in i8 lanes.
const RELAXED: Levels = { qMin: -64, qMax: 63, vMax: 127, rMax: 64 };

/**
 * What a scan on approximate logits says about them: for every row i,
 *   |exact_i - logits_i| <= slack + rowSlack[i]
 * where exact is the float32 engine's logit, and exact() gives those for any
 * rows (call it before the next scan). A caller that rescores every row that
 * could still reach its k-th best exact score gets exactly the float32 top-k.
 */
export interface ScanBounds {
  slack: number;
  rowSlack: Float32Array;
  exact(rows: ArrayLike<number>): Float64Array;
  /** A single query's scan also gives, per block of BLOCK_ROWS rows, the largest bound logits[r] + rowSlack[r]. */
  blocks?: ScanBlocks;
}

/** Per block of `rows` rows (block b holds rows b rows .. (b + 1) rows - 1), the largest logits[r] + rowSlack[r] among them. */
export interface ScanBlocks {
  rows: number;
  max: Float64Array;
}

/** One query's int8 scan: its approximate logits and the bound's two parts. */
export interface Int8Scan {
  logits: Float64Array;
  slack: number;
  rowSlack: Float32Array;
  blocks?: ScanBlocks;
}

/**
 * P kept a second time as int8, per column: P_ij ~ o_j + s_j q_ij, with s_j
 * and o_j fitted to the `clip` and 1 - `clip` quantiles of the column. Then
 *   relu(P_ij + u_j) ~ s_j relu(q_ij + r_j),   r_j = round((o_j + u_j) / s_j)
 * and the logit ~ t * sum_j v_j relu(q_ij + r_j) + b2 with v_j = round(w_j s_j / t).
 * Each row's own quantisation error (sum_j |w_j| |P_ij - o_j - s_j q_ij|,
 * clipping included) is kept beside it, and each query's rounding error is
 * computed from r, so every approximate logit comes with a bound.
 */
export class Int8Mirror {
  readonly kernel: Int8Kernel;
  private scale: Float32Array | undefined;
  private offset: Float32Array | undefined;
  private t = 1;
  private v: Int16Array | undefined;
  private readonly absW: Float64Array;

  private readonly levels: Levels;
  /** Each query slot's offsets r, written over by every prepare() (the kernel copies them into its memory). */
  private readonly offsets: Int16Array[] = [];

  /** `relaxed`: 7-bit rows for the relaxed-SIMD kernel (the caller checks the runtime has it); `projection`: the kernel also projects queries. */
  constructor(readonly hidden: number, private readonly w: Float32Array, private readonly clip = 1e-4, threads = 1, relaxed = false, projection?: ProjectionWeights) {
    if (!(clip >= 0 && clip < 0.5)) throw new RangeError(`int8 clip quantile must be in [0, 0.5), got ${clip}`);
    this.kernel = new Int8Kernel(hidden, threads, relaxed, projection);
    this.levels = relaxed ? RELAXED : SIMD128;
    this.absW = Float64Array.from(w.subarray(0, hidden), Math.abs);
  }

  get fitted(): boolean {
    return this.scale !== undefined;
  }

  get rows(): number {
    return this.kernel.rows;
  }

  close(): Promise<void> {
    return this.kernel.close();
  }

  /** Bytes the int8 copy takes (rows, scratch, per-row bounds). */
  get memoryBytes(): number {
    return this.kernel.memoryBytes;
  }

  /** Fits the scale to these rows (n x hidden, row-major, any stride) and quantises them all. */
  fit(rowAt: (i: number) => Float32Array, n: number): void {
    const H = this.hidden;
    const step = Math.max(1, Math.floor(n / FIT_SAMPLE));
    const sample: number[] = [];
    for (let i = 0; i < n; i += step) sample.push(i);
    const m = sample.length;
    const rows = new Float32Array(m * H);
    sample.forEach((row, k) => rows.set(rowAt(row).subarray(0, H), k * H));
    const column = new Float32Array(m);
    const scale = new Float32Array(H);
    const offset = new Float32Array(H);
    const lo = Math.floor(this.clip * (m - 1));
    const hi = Math.ceil((1 - this.clip) * (m - 1));
    for (let j = 0; j < H; j++) {
      for (let k = 0; k < m; k++) column[k] = rows[k * H + j];
      column.sort();
      const a = column[lo];
      const b = column[hi];
      // qMax - qMin steps over [a, b]; a constant column still gets a usable step.
      const { qMin, qMax } = this.levels;
      const s = b > a ? (b - a) / (qMax - qMin) : Math.max(Math.abs(a), 1) * 1e-3;
      scale[j] = s;
      offset[j] = a - qMin * s;
    }
    let maxWs = 0;
    for (let j = 0; j < H; j++) maxWs = Math.max(maxWs, Math.abs(this.w[j] * scale[j]));
    this.t = maxWs > 0 ? maxWs / this.levels.vMax : 1;
    this.v = Int16Array.from({ length: H }, (_, j) => Math.round((this.w[j] * scale[j]) / this.t));
    this.scale = scale;
    this.offset = offset;
    this.kernel.reset();
    this.kernel.setWeights(this.v);
    const batch = new Float32Array(Math.min(n, 1024) * H);
    for (let start = 0; start < n; start += 1024) {
      const m = Math.min(1024, n - start);
      for (let i = 0; i < m; i++) batch.set(rowAt(start + i).subarray(0, H), i * H);
      this.append(batch, m);
    }
  }

  /** Quantises and appends n rows (n x hidden floats); fit() first. */
  append(rows: Float32Array, n: number): void {
    const { scale, offset } = this;
    if (!scale || !offset) throw new Error('int8 rows appended before the scale was fitted');
    const H = this.hidden;
    const q = new Int8Array(n * H);
    const { qMin, qMax } = this.levels;
    const slack = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let err = 0;
      for (let j = 0; j < H; j++) {
        const p = rows[i * H + j];
        const k = Math.max(qMin, Math.min(qMax, Math.round((p - offset[j]) / scale[j])));
        q[i * H + j] = k;
        err += this.absW[j] * Math.abs(p - (offset[j] + scale[j] * k));
      }
      slack[i] = err;
    }
    this.kernel.append(q, n, slack);
  }

  clear(index: number): void {
    if (index < this.kernel.rows) this.kernel.clear(index);
  }

  /**
   * The query's offsets r, the integer sum every row gets on top of the
   * kernel's, and the query's share of the bound; undefined when its offsets
   * would overflow the integer sums (the caller then scans in float32).
   *
   * Where r_j is above rMax, every row's q_ij + r_j is positive (q >= qMin >=
   * -rMax): the relu is linear there, so the kernel gets rMax and the rest,
   * v_j (r_j - rMax), is the same for every row and added exactly. Where r_j
   * is below -rMax, every row's relu is 0 either way.
   */
  private prepare(u: Float32Array, slot: number): { r: Int16Array; constant: number; slack: number } | undefined {
    const { scale, offset, v } = this;
    if (!scale || !offset || !v) return undefined;
    const { qMax, rMax } = this.levels;
    const H = this.hidden;
    // Locals, not fields, in the loop: it runs once per query, before the scan can start.
    const { absW, w, t } = this;
    const r = this.offsets[slot] ??= new Int16Array(H);
    let slack = 0;
    let sum = 0;
    let constant = 0;
    let scaleSum = 0;
    for (let j = 0; j < H; j++) {
      const s = scale[j];
      const c = (offset[j] + u[j]) / s;
      const rj = Math.round(c);
      const clamped = rj > rMax ? rMax : rj < -rMax ? -rMax : rj;
      r[j] = clamped;
      const vj = v[j];
      if (rj > rMax) constant += vj * (rj - rMax);
      const m = qMax + rj > 0 ? qMax + rj : 0;
      sum += Math.abs(vj) * (qMax + clamped > 0 ? qMax + clamped : 0);
      const aws = absW[j] * s;
      slack += aws * Math.abs(c - rj) + Math.abs(w[j] * s - t * vj) * m;
      scaleSum += aws * m;
    }
    if (sum >= 2 ** 31 - 1) return undefined;
    // The float32 engine's own rounding, against which the result is exact: a margin well above it.
    return { r, constant, slack: slack + 1e-4 * (1 + scaleSum) };
  }

  /** Approximate logits for the first `count` rows (in the kernel's scratch until the next scan; past one chunk of rows, in `into`), and the query's share of the bound; undefined: see prepare(). */
  scan(u: Float32Array, count: number, b2: number, into: Float64Array): Int8Scan | undefined {
    return this.scanMany([u], count, b2, [into])[0];
  }

  /** scan() for several queries in one pass over the int8 rows (those that could overflow get undefined). */
  scanMany(us: Float32Array[], count: number, b2: number, intos: Float64Array[]): (Int8Scan | undefined)[] {
    if (us.length > INT8_MAX_QUERIES) throw new RangeError(`scanMany takes at most ${INT8_MAX_QUERIES} queries, got ${us.length}`);
    const prepared = us.map((u, i) => this.prepare(u, i));
    const live = prepared.flatMap((p, i) => (p ? [i] : []));
    const result: (Int8Scan | undefined)[] = prepared.map(() => undefined);
    if (live.length === 0) return result;
    const rs = live.map((i) => prepared[i]!.r);
    // The kernel writes logits, t * (sum + the query's constant) + b2: one query's stay in its scratch
    // (until the next scan, as blocks() do), a batch's are copied out of it into `intos`.
    const affine = { t: this.t, bases: live.map((i) => this.t * prepared[i]!.constant + b2) };
    let logits: Float64Array[];
    if (live.length === 1) logits = [this.kernel.logitsOf(rs[0], count, affine, intos[live[0]])];
    else {
      logits = live.map((i) => intos[i].subarray(0, count));
      this.kernel.runMany(rs, logits, count, affine);
    }
    const rowSlack = this.kernel.rowSlack();
    live.forEach((i, k) => {
      const blocks = { rows: BLOCK_ROWS, max: live.length === 1 ? this.kernel.blocks() : this.kernel.blocksOf(k) };
      result[i] = { logits: logits[k], slack: prepared[i]!.slack, rowSlack, blocks };
    });
    return result;
  }
}
