import { Int8Kernel } from './kernel/int8-kernel.js';

/** Rows needed before the scale is fitted; fewer are scanned in float32 alone. */
export const INT8_FIT_MIN_ROWS = 1024;
/** Rows sampled per column to fit the scale. */
const FIT_SAMPLE = 8192;
/** |v_j| at most this: 12 bits, so sum_j |v_j| * relu(...) stays an i32 for any sane query. */
const V_MAX = 2047;
/** r_j is kept inside int16 with room for q: q + r never saturates. */
const R_MAX = 32000;

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
  /** The largest of rowSlack (every row's): a row whose logit plus this and slack is below a floor needs no look. */
  maxRowSlack: number;
  exact(rows: ArrayLike<number>): Float64Array;
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
  private rowSlack = new Float32Array(1024);
  private maxRowSlack = 0;
  private readonly absW: Float64Array;
  /** The integer sums of each query of a batch, kept from scan to scan. */
  private readonly outs: Int32Array[] = [];

  constructor(readonly hidden: number, private readonly w: Float32Array, private readonly clip = 1e-4, threads = 1) {
    if (!(clip >= 0 && clip < 0.5)) throw new RangeError(`int8 clip quantile must be in [0, 0.5), got ${clip}`);
    this.kernel = new Int8Kernel(hidden, threads);
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
    return this.kernel.memoryBytes + this.rowSlack.byteLength;
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
      // 255 steps over [a, b]; a constant column still gets a usable step.
      const s = b > a ? (b - a) / 255 : Math.max(Math.abs(a), 1) * 1e-3;
      scale[j] = s;
      offset[j] = a + 128 * s;
    }
    let maxWs = 0;
    for (let j = 0; j < H; j++) maxWs = Math.max(maxWs, Math.abs(this.w[j] * scale[j]));
    this.t = maxWs > 0 ? maxWs / V_MAX : 1;
    this.v = Int16Array.from({ length: H }, (_, j) => Math.round((this.w[j] * scale[j]) / this.t));
    this.scale = scale;
    this.offset = offset;
    this.kernel.reset();
    this.maxRowSlack = 0;
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
    const first = this.kernel.rows;
    this.growSlack(first + n);
    for (let i = 0; i < n; i++) {
      let err = 0;
      for (let j = 0; j < H; j++) {
        const p = rows[i * H + j];
        const k = Math.max(-128, Math.min(127, Math.round((p - offset[j]) / scale[j])));
        q[i * H + j] = k;
        err += this.absW[j] * Math.abs(p - (offset[j] + scale[j] * k));
      }
      this.rowSlack[first + i] = err;
      if (err > this.maxRowSlack) this.maxRowSlack = err;
    }
    this.kernel.append(q, n);
  }

  clear(index: number): void {
    if (index < this.kernel.rows) this.kernel.clear(index);
  }

  /**
   * The query's offsets r and its share of the bound, or undefined when its
   * offsets would overflow the integer sums (the caller then scans in float32).
   */
  private prepare(u: Float32Array): { r: Int16Array; slack: number } | undefined {
    const { scale, offset, v } = this;
    if (!scale || !offset || !v) return undefined;
    const H = this.hidden;
    const r = new Int16Array(H);
    let slack = 0;
    let sum = 0;
    let scaleSum = 0;
    for (let j = 0; j < H; j++) {
      const c = (offset[j] + u[j]) / scale[j];
      const rj = Math.max(-R_MAX, Math.min(R_MAX, Math.round(c)));
      r[j] = rj;
      const m = Math.max(0, 127 + rj);
      sum += Math.abs(v[j]) * m;
      slack += this.absW[j] * scale[j] * Math.abs(c - rj) + Math.abs(this.w[j] * scale[j] - this.t * v[j]) * m;
      scaleSum += this.absW[j] * scale[j] * m;
    }
    if (sum >= 2 ** 31 - 1) return undefined;
    // The float32 engine's own rounding, against which the result is exact: a margin well above it.
    return { r, slack: slack + 1e-4 * (1 + scaleSum) };
  }

  /** Approximate logits for the first `count` rows (written into `into`), and the query's share of the bound; undefined: see prepare(). */
  scan(u: Float32Array, count: number, b2: number, into: Float64Array): { logits: Float64Array; slack: number; rowSlack: Float32Array; maxRowSlack: number } | undefined {
    return this.scanMany([u], count, b2, [into])[0];
  }

  /** scan() for several queries in one pass over the int8 rows (those that could overflow get undefined). */
  scanMany(us: Float32Array[], count: number, b2: number, intos: Float64Array[]): ({ logits: Float64Array; slack: number; rowSlack: Float32Array; maxRowSlack: number } | undefined)[] {
    const prepared = us.map((u) => this.prepare(u));
    const live = prepared.flatMap((p, i) => (p ? [i] : []));
    if (live.length === 0) return prepared.map(() => undefined);
    while (this.outs.length < live.length) this.outs.push(new Int32Array(0));
    for (let k = 0; k < live.length; k++) if (this.outs[k].length < count) this.outs[k] = new Int32Array(Math.max(count, Math.ceil(this.outs[k].length * 1.5)));
    const rs = live.map((i) => prepared[i]!.r);
    if (live.length === 1) this.kernel.run(rs[0], this.outs[0], count);
    else this.kernel.runMany(rs, this.outs.slice(0, live.length), count);
    const result: ({ logits: Float64Array; slack: number; rowSlack: Float32Array; maxRowSlack: number } | undefined)[] = prepared.map(() => undefined);
    live.forEach((i, k) => {
      const logits = intos[i].subarray(0, count);
      const t = this.t;
      const out = this.outs[k];
      for (let row = 0; row < count; row++) logits[row] = t * out[row] + b2;
      result[i] = { logits, slack: prepared[i]!.slack, rowSlack: this.rowSlack, maxRowSlack: this.maxRowSlack };
    });
    return result;
  }

  private growSlack(rows: number): void {
    if (rows <= this.rowSlack.length) return;
    const next = new Float32Array(Math.max(rows, this.rowSlack.length * 2));
    next.set(this.rowSlack);
    this.rowSlack = next;
  }
}
