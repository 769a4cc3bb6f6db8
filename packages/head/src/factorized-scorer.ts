import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { GraphBuilder } from '@yoco/onnx';
import { Tensor, type InferenceSession } from 'onnxruntime-node';
import { BaseScorer, type BaseScorerOptions } from './base-scorer.js';
import type { Head } from './head.js';
import { createSession, SharedSessions, type RuntimeOptions } from './ort-session.js';
import { MAX_QUERIES, ReluDotKernel } from './kernel/relu-dot-kernel.js';
import { INT8_FIT_MIN_ROWS, Int8Mirror, type Int8Scan, type ScanBounds } from './int8-mirror.js';
import { INT8_MAX_QUERIES, Int8Kernel } from './kernel/int8-kernel.js';
import { rankedOf, topK, type Match } from './top-k.js';
import { RescoredTopK } from './rescored-top-k.js';
import { ResidentScan, type ResidentOptions } from './resident-scan.js';
import { rescoreReaching, rescoreWithinBounds } from './bounded-rescore.js';
import { BoundFloors } from './bound-floor.js';

export interface FactorizedOptions extends RuntimeOptions, BaseScorerOptions {
  /** Gallery rows projected per ORT run when adding (bounds the temporary [n, D] tensor). */
  projectBatch?: number;
  /** Threads scanning P per query (the caller's plus helpers); default: every core. */
  kernelThreads?: number;
  /**
   * The int8 engine: P is kept a second time as int8 (a quarter of the bytes
   * a scan reads), scans give approximate logits with a bound on their error,
   * and the slice rescores from float32 P whatever could still reach its
   * top-k, so answers equal the float32 engine's. `clip`: the quantile at
   * which each column's range is cut (default 1e-4).
   */
  int8?: boolean | Int8Options;
  /**
   * The resident engine: the scan runs in ONNX Runtime on the execution
   * providers asked for, with P sealed into sessions as initializers so a
   * GPU keeps it on the device (resident-scan.ts). Float32, as factorized.
   */
  resident?: boolean | ResidentOptions;
}

export interface Int8Options {
  /** The quantile at which each column's range is cut (default 1e-4). */
  clip?: number;
  /**
   * Below this many rows a query is scanned in float32: the int8 pass plus
   * its rescoring costs more than it saves there (bench:head: 1.1 against
   * 0.5 ms at 1491 rows). Default 8192; at least 1024, the rows a scale is
   * fitted on.
   */
  minRows?: number;
  /**
   * The kernel: 'relaxed' (relaxed SIMD's int8 dot, 7-bit rows and int8
   * weights), 'simd128' (what every Node 20 runs), or 'auto' (default), which
   * is simd128: relaxed SIMD's coarser levels widen the bound about 2.5x, so
   * a search rescores about 12x the rows, and that costs more than its scan
   * saves (docs/int8.md). Node 20 has relaxed SIMD only behind V8's
   * --experimental-wasm-relaxed-simd; 'relaxed' turns that flag on in this
   * process when it is off (V8 reads it when a module is compiled), and fails
   * when its kernel does not pass a check of exact sums at start.
   */
  simd?: 'auto' | 'relaxed' | 'simd128';
}

/** The int8 kernel's instruction set as chosen; undefined for the float32 engine. */
export type Int8Simd = 'relaxed' | 'simd128';

/** [n, D] -> [n, H] = X · Wᵀ (+ b): one GEMM in ORT. */
function projectionModel(dim: number, hidden: number, w1: Float32Array, half: 0 | 1, bias?: Float32Array): Uint8Array {
  const wt = new Float32Array(dim * hidden);
  const off = half * dim;
  for (let h = 0; h < hidden; h++) {
    const row = h * 2 * dim + off;
    for (let c = 0; c < dim; c++) wt[c * hidden + h] = w1[row + c];
  }
  const g = new GraphBuilder(half === 0 ? 'project_query' : 'project_rows');
  const x = g.input('x', ['n', dim]);
  let y = g.op('MatMul', [x, g.initializer('wt', wt, [dim, hidden])], {}, bias ? {} : { output: 'y' });
  if (bias) y = g.op('Add', [y, g.initializer('b', bias, [hidden])], {}, { output: 'y' });
  g.output(y, ['n', hidden]);
  return g.toBytes({ opset: 17 });
}

/** Why 'auto' keeps simd128 (reported in Status, as a reason relaxed SIMD is not used). */
const AUTO_KEEPS_SIMD128 = 'auto keeps simd128: the relaxed kernel\'s 7-bit rows and int8 weights widen the bound, and rescoring the extra candidates costs more than its scan saves (set relaxed to insist)';

/** How long the scan's helpers stay awake for the query being projected: longer than a projection takes. */
const WARM_US = 3000;

function int8Settings(o: Int8Options, hidden: number): Required<Omit<Int8Options, 'simd'>> & { simd: Int8Simd; relaxedProblem: string } {
  const minRows = o.minRows ?? 8192;
  if (!(Number.isInteger(minRows) && minRows >= INT8_FIT_MIN_ROWS)) throw new RangeError(`int8 minRows must be an integer of at least ${INT8_FIT_MIN_ROWS}, got ${o.minRows}`);
  const want = o.simd ?? 'auto';
  if (!['auto', 'relaxed', 'simd128'].includes(want)) throw new RangeError(`int8 simd must be auto, relaxed or simd128, got ${String(want)}`);
  if (want === 'relaxed') setFlagsFromString('--experimental-wasm-relaxed-simd');
  if (want !== 'relaxed') return { clip: o.clip ?? 1e-4, minRows, simd: 'simd128', relaxedProblem: want === 'auto' ? AUTO_KEEPS_SIMD128 : 'not asked for (simd128)' };
  const relaxedProblem = Int8Kernel.relaxedProblem(hidden);
  if (relaxedProblem) throw new RangeError(`int8 simd 'relaxed': ${relaxedProblem}`);
  return { clip: o.clip ?? 1e-4, minRows, simd: 'relaxed', relaxedProblem };
}

/** The rows' projection always runs in ORT; the query's only for the resident engine (the others project in their kernel). */
type Projections = SharedSessions<{ rows: InferenceSession; query?: InferenceSession }>;

interface Settings {
  projectBatch: number;
  kernelThreads: number;
  base: BaseScorerOptions;
  /** The int8 engine's settings; undefined for the float32 engine. */
  int8: ReturnType<typeof int8Settings> | undefined;
  /** The resident engine's settings and the runtime its sessions use; undefined otherwise. */
  resident: { options: ResidentOptions; runtime: RuntimeOptions } | undefined;
}

/**
 * C1 is linear in concat(q, g): C1·[q; g] = A·q + B·g + b1. Each row is
 * stored as P = B·g + b1 (H floats, computed once in ORT when it is added);
 * a query costs u = A·q once, then w2 · relu(P + u) + b2 per row: O(H)
 * instead of O(2D·H), and exactly the head's function. The raw vectors are
 * not kept.
 *
 * Rows are projected in the background, in order; a scan reads only the rows
 * whose projection has landed (the kernel's row count), never a row that is
 * counted but not written yet.
 */
export class FactorizedScorer extends BaseScorer {
  readonly engine: 'factorized' | 'int8' | 'resident';
  private readonly resident: ResidentScan | undefined;
  private readonly kernel: ReluDotKernel;
  private readonly mirror: Int8Mirror | undefined;
  /** The int8 scan's logits, kept from scan to scan as `outs` are (a 400 KB array per query is GC work). */
  private readonly approxOuts: Float64Array[] = [];
  /** The bounds of the approximate logits each buffer holds now (int8). */
  private readonly bounds = new WeakMap<object, ScanBounds>();
  private pending: Promise<void> = Promise.resolve();
  private queued = 0;
  /** Set when rows could not even be held in place: indices would shift, so no scan is trusted again. */
  private broken: Error | undefined;
  /**
   * Logit buffers kept from scan to scan ([0] for a single query, [i] for the
   * i-th of a batch): a fresh 100 KB array per query is external memory that
   * V8 counts towards its next full mark-compact, which takes 4-30 ms in a
   * shard holding 25000 rows.
   */
  private readonly outs: Float32Array[] = [];

  private constructor(
    head: Head,
    private readonly projections: Projections,
    private readonly settings: Settings,
  ) {
    super(head, settings.base);
    this.engine = settings.resident ? 'resident' : settings.int8 === undefined ? 'factorized' : 'int8';
    // A query is projected by the kernel that scans it (the int8 one, for that engine): the same threads, woken once.
    this.kernel = new ReluDotKernel(head.hidden, head.w2, settings.kernelThreads, this.engine === 'factorized' ? head : undefined);
    this.resident = settings.resident ? new ResidentScan(head, (i) => this.kernel.rowView(i), settings.resident.runtime, settings.resident.options) : undefined;
    this.mirror = settings.int8 === undefined ? undefined : new Int8Mirror(head.hidden, head.w2, settings.int8.clip, settings.kernelThreads, settings.int8.simd === 'relaxed', head);
  }

  /** The int8 kernel's instruction set (undefined for the float32 engine). */
  get int8Simd(): Int8Simd | undefined {
    return this.settings.int8?.simd;
  }

  /** Why the relaxed-SIMD kernel is not used ('' when it is, or for the float32 engine). */
  get relaxedProblem(): string {
    return this.settings.int8?.relaxedProblem ?? '';
  }

  static async create(head: Head, options: FactorizedOptions = {}): Promise<FactorizedScorer> {
    const batch = options.projectBatch ?? 1024;
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`projectBatch must be a positive integer, got ${batch}`);
    const threads = options.kernelThreads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`kernelThreads must be a positive integer, got ${threads}`);
    const { dim, hidden, w1, b1 } = head;
    const [rows, query] = await Promise.all([
      createSession(projectionModel(dim, hidden, w1, 1, b1), options),
      options.resident ? createSession(projectionModel(dim, hidden, w1, 0), options) : undefined,
    ]);
    return new FactorizedScorer(head, new SharedSessions({ rows, ...(query ? { query } : {}) }), {
      projectBatch: batch,
      kernelThreads: threads,
      base: { maxRows: options.maxRows, onFault: options.onFault },
      int8: options.int8 && !options.resident ? int8Settings(options.int8 === true ? {} : options.int8, hidden) : undefined,
      resident: options.resident ? { options: options.resident === true ? {} : options.resident, runtime: { threads: options.threads, executionProviders: options.executionProviders } } : undefined,
    });
  }

  /** Bytes of wasm memory this scorer's rows take (with the int8 engine, both copies). */
  get memoryBytes(): number {
    return this.kernel.memoryBytes + (this.mirror?.memoryBytes ?? 0);
  }

  override get idle(): boolean {
    return this.queued === 0;
  }

  protected engineCapacity(): number {
    return this.kernel.maxRows;
  }

  protected cloneWith(rows: number[]): FactorizedScorer {
    const next = new FactorizedScorer(this.head, this.projections.retain(), this.settings);
    if (rows.length > 0) next.kernel.appendFrom(this.kernel, rows);
    // A compaction refits the int8 scale to the rows it keeps, off the search path.
    next.fitMirror();
    return next;
  }

  protected appendRows(rows: Float32Array, n: number, first: number): void {
    const copy = rows.slice(0, n * this.head.dim);
    this.enqueue(async () => {
      if (this.broken) {
        this.markLost(first, n, this.broken);
        return;
      }
      const D = this.head.dim;
      let done = 0;
      try {
        for (; done < n; ) {
          const m = Math.min(this.settings.projectBatch, n - done);
          const x = new Tensor('float32', copy.subarray(done * D, (done + m) * D), [m, D]);
          const { y } = await this.projections.sessions.rows.run({ x });
          this.kernel.append(y.data as Float32Array, m);
          // In the same step: the int8 copy never lags the float32 rows it mirrors.
          if (this.mirror?.fitted) this.mirror.append(y.data as Float32Array, m);
          else this.fitMirror();
          done += m;
        }
      } catch (err) {
        // Placeholders keep every later row at its index; the rows themselves are lost and said so.
        try {
          if (!this.broken) {
            this.kernel.appendZeros(n - done);
            if (this.mirror?.fitted) this.mirror.append(new Float32Array((n - done) * this.head.hidden), n - done);
          }
        } catch (placeholderErr) {
          this.broken = placeholderErr as Error;
        }
        this.markLost(first + done, n - done, err as Error);
      }
    });
  }

  protected clearRow(index: number): void {
    this.enqueue(async () => {
      this.kernel.clear(index);
      this.mirror?.clear(index);
    });
  }

  override async flush(): Promise<void> {
    await this.pending;
  }

  protected computeLogits(query: Float32Array, _count: number, approximate = false): Promise<ArrayLike<number>> {
    return this.logitsOne(query, approximate, 0);
  }

  /** One query's logits into buffer `slot` (a batch's queries each have their own). */
  private async logitsOne(query: Float32Array, approximate: boolean, slot: number): Promise<ArrayLike<number>> {
    // Which kernel scans is decided again after the await; rows only grow, so this guess is the usual answer.
    const u = await this.project(query, this.resident ? undefined : approximate && this.int8Ready(this.kernel.rows) ? this.mirror!.kernel : this.kernel);
    // Read after the await: rows projected meanwhile are complete and can be scanned; later ones cannot.
    const n = this.scannable();
    if (approximate) {
      const approx = this.approximate(u, n, slot);
      if (approx) return approx;
    }
    const out = this.out(slot, n);
    if (this.resident) await this.resident.run(u, out, n);
    else this.kernel.run(u, out, n);
    const b2 = this.head.b2;
    for (let i = 0; i < n; i++) out[i] += b2;
    return out;
  }

  protected override async computeManyLogits(queries: Float32Array[], count: number, approximate = false): Promise<ArrayLike<number>[]> {
    // Alone, a query scans best in one call over all rows (and with the helper threads).
    if (queries.length === 1) return [await this.logitsOne(queries[0], approximate, 0)];
    // The resident sessions take one query per run; each gets its own buffer.
    if (this.resident) {
      const outs: ArrayLike<number>[] = [];
      for (const [i, q] of queries.entries()) outs.push(await this.logitsOne(q, false, i));
      return outs;
    }
    if (approximate && this.mirror) return this.approximateMany(queries);
    const D = this.head.dim;
    const H = this.head.hidden;
    const outs: Float32Array[] = [];
    let n = -1;
    for (let start = 0; start < queries.length; start += MAX_QUERIES) {
      const part = queries.slice(start, start + MAX_QUERIES);
      const x = new Float32Array(part.length * D);
      part.forEach((q, i) => x.set(q, i * D));
      // One projection for the batch's u vectors (A read once), then one pass over the rows for all of them.
      const u = await this.project(x, this.kernel);
      // One row count for the whole batch, fixed after the first await (rows only grow).
      if (n < 0) n = this.scannable();
      const partOuts = part.map((_, j) => this.out(start + j, n));
      this.kernel.runMany(part.map((_, i) => u.subarray(i * H, (i + 1) * H)), partOuts, n);
      const b2 = this.head.b2;
      for (const o of partOuts) for (let i = 0; i < n; i++) o[i] += b2;
      outs.push(...partOuts);
    }
    return outs;
  }

  protected override async computeRowLogits(query: Float32Array, rows: number[]): Promise<Float64Array> {
    const u = await this.project(query, undefined);
    const n = this.kernel.rows;
    return Float64Array.from(rows, (r) => (r < n ? this.kernel.rowDot(r, u, this.head.w2) + this.head.b2 : -Infinity));
  }

  /**
   * The int8 engine's row-level top-k, made exact as the slice's is: by the
   * most each row's exact logit can be (approximate logit plus the row's
   * bound), the best k x 8 are rescored from float32, then the next k x 2 at
   * a time while their bound still reaches the k-th best exact logit. The
   * candidates are the rows whose bound reaches the floor the scan's blocks
   * give, when they are enough (every row outside them is below the floor),
   * else every row. The float32 engine's answer, bit for bit.
   */
  override async search(query: Float32Array, k: number): Promise<Match[]> {
    if (!this.mirror) return super.search(query, k);
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
    const { logits, alive, count, bounds } = await this.scan(query);
    if (!bounds) return topK(logits, alive, count, k);
    const exact = this.rescored.reset(k);
    const rescore = (rows: number[]) => {
      const got = bounds.exact(rows);
      for (let i = 0; i < rows.length; i++) exact.add(rows[i], got[i]);
    };
    const approx = logits as Float64Array;
    const { rowSlack } = bounds;
    const wanted = k * 16;
    const beyond = (floor: number) => {
      const done = exact.rowSet();
      const more: number[] = [];
      for (let r = 0; r < count; r++) if (approx[r] + rowSlack[r] >= floor && alive[r] === 1 && !done.has(r)) more.push(r);
      return more;
    };
    const floors = BoundFloors.of(bounds.blocks, count, wanted);
    const floor = floors ? floors.floor(wanted) : -Infinity;
    const reaching = floors ? floors.rowsReaching(approx, rowSlack, alive, count, floor, this.reaching) : 0;
    if (reaching >= wanted) {
      // Every row outside them is below the floor: they are the candidates, as they come.
      const rows = this.reaching.rows;
      const upper = this.upperScratch(reaching);
      for (let i = 0; i < reaching; i++) upper[i] = approx[rows[i]] + rowSlack[rows[i]];
      rescoreReaching({ rows, upper, n: reaching, floor, first: k * 8, step: k * 2, slack: bounds.slack, kth: () => exact.kth(), rescore, beyond });
      return exact.top();
    }
    const upper = this.upperScratch(count);
    upperBounds(approx, rowSlack, count, upper);
    rescoreWithinBounds({ wide: rankedOf(upper, count, wanted, undefined, alive), limit: wanted, first: k * 8, step: k * 2, slack: bounds.slack, kth: () => exact.kth(), rescore, beyond });
    return exact.top();
  }

  protected override boundsOf(logits: ArrayLike<number>): ScanBounds | undefined {
    return this.bounds.get(logits as object);
  }

  /**
   * int8 logits for the first n rows with their bounds, or undefined when the
   * int8 copy cannot answer this query (too few rows to fit a scale yet, or
   * offsets that would overflow its integer sums): then the float32 scan does.
   */
  private approximate(u: Float32Array, n: number, slot: number): Float64Array | undefined {
    const mirror = this.mirror;
    if (!mirror || !this.int8Ready(n)) return undefined;
    const got = mirror.scan(u, n, this.head.b2, this.approxOut(slot, n));
    if (!got) return undefined;
    this.bounds.set(got.logits, this.boundsFor(got, u));
    return got.logits;
  }

  /**
   * A batch on the int8 engine: one GEMM for the u vectors, then one pass
   * over the int8 rows for up to INT8_MAX_QUERIES of them; a query the int8
   * copy cannot answer (see approximate) is scanned in float32 on its own.
   */
  private async approximateMany(queries: Float32Array[]): Promise<ArrayLike<number>[]> {
    const D = this.head.dim;
    const H = this.head.hidden;
    const outs: ArrayLike<number>[] = [];
    for (let start = 0; start < queries.length; start += INT8_MAX_QUERIES) {
      const part = queries.slice(start, start + INT8_MAX_QUERIES);
      const x = new Float32Array(part.length * D);
      part.forEach((q, i) => x.set(q, i * D));
      const u = await this.project(x, this.mirror!.kernel);
      const n = this.scannable();
      const us = part.map((_, i) => u.subarray(i * H, (i + 1) * H));
      const mirror = this.mirror!;
      const usable = this.int8Ready(n);
      const b2 = this.head.b2;
      const intos = part.map((_, i) => this.approxOut(start + i, n));
      const got = usable ? mirror.scanMany(us, n, b2, intos) : part.map(() => undefined);
      for (let i = 0; i < part.length; i++) {
        const g = got[i];
        if (g) {
          this.bounds.set(g.logits, this.boundsFor(g, us[i]));
          outs.push(g.logits);
          continue;
        }
        const out = this.out(start + i, n);
        this.kernel.run(us[i], out, n);
        for (let r = 0; r < n; r++) out[r] += b2;
        outs.push(out);
      }
    }
    return outs;
  }

  /** What a caller needs to make int8 logits exact: the bound, and the float32 engine's very arithmetic row by row. */
  private boundsFor(got: Int8Scan, u: Float32Array): ScanBounds {
    // u is this query's own (project() returns a fresh array), so the closure may keep it.
    const b2 = this.head.b2;
    const bounds: ScanBounds = {
      slack: got.slack,
      rowSlack: got.rowSlack,
      // The float32 scan's wasm function, then + b2 in float32, as run() and computeLogits do.
      exact: (rows) => {
        const scores = this.kernel.rowScores(rows, u);
        const out = new Float64Array(scores.length);
        for (let i = 0; i < scores.length; i++) out[i] = Math.fround(scores[i] + b2);
        return out;
      },
    };
    if (got.blocks) bounds.blocks = got.blocks;
    return bounds;
  }

  /**
   * Fits the int8 scale once there are rows enough, on the rows there are
   * (synchronously: no row lands in between); later rows are quantised as
   * they land.
   */
  private fitMirror(): void {
    if (!this.mirror || this.mirror.fitted || this.kernel.rows < INT8_FIT_MIN_ROWS) return;
    this.mirror.fit((i) => this.kernel.rowView(i), this.kernel.rows);
  }

  /**
   * u = A q for the queries in x (row-major, dim floats each), nq x hidden floats. The helpers of the kernel
   * that scans next are woken first (waking them when the scan starts would cost it as much again:
   * ScanPool.warm). Every engine but resident projects on its scanning kernel's memory and threads
   * (QueryProjection), the same arithmetic alone or in a batch, so int8's rescoring from float32 is the
   * float32 engine's answer bit for bit; resident projects in ORT, on its providers.
   */
  private async project(x: Float32Array, next: { warm(us: number): void } | undefined): Promise<Float32Array> {
    const D = this.head.dim;
    const nq = x.length / D;
    next?.warm(WARM_US);
    const query = this.projections.sessions.query;
    if (query) return (await query.run({ x: new Tensor('float32', x, [nq, D]) })).y.data as Float32Array;
    // Batches come in parts of at most MAX_QUERIES (INT8_MAX_QUERIES), within what one projection takes.
    return (this.mirror?.kernel ?? this.kernel).project(x, nq);
  }

  /** Rows a scan may read now: the projected ones, or none at all once the row store is broken. */
  private scannable(): number {
    if (this.broken) throw new Error(`the factorized scorer lost track of its rows (${this.broken.message}); it must be rebuilt`);
    return this.kernel.rows;
  }

  /** Whether the int8 copy answers a scan of n rows: enough of them (minRows), a fitted scale, and every row mirrored. */
  private int8Ready(n: number): boolean {
    const mirror = this.mirror;
    if (!mirror || n < this.settings.int8!.minRows) return false;
    if (!mirror.fitted) this.fitMirror();
    return mirror.fitted && mirror.rows >= n;
  }

  private upper = new Float64Array(0);
  /** The rows a row-level int8 search rescored (one search at a time, as upper). */
  private readonly rescored = new RescoredTopK(10);
  /** The rows a row-level int8 search found reaching its floor. */
  private readonly reaching = { rows: new Int32Array(1024) };

  /** The per-row upper bounds of a row-level int8 search (one search at a time: search() is synchronous after its scan). */
  private upperScratch(count: number): Float64Array {
    if (this.upper.length < count) this.upper = new Float64Array(Math.max(count, Math.ceil(this.upper.length * 1.5)));
    return this.upper;
  }

  /** int8 logit buffer i, at least count long (grown as out() grows its buffers). */
  private approxOut(i: number, count: number): Float64Array {
    let b = this.approxOuts[i];
    if (!b || b.length < count) this.approxOuts[i] = b = new Float64Array(Math.max(count, Math.ceil((b?.length ?? 0) * 1.5)));
    return b;
  }

  /** Buffer i, at least count long (grown by half again when short: rows only ever grow). */
  private out(i: number, count: number): Float32Array {
    let b = this.outs[i];
    if (!b || b.length < count) this.outs[i] = b = new Float32Array(Math.max(count, Math.ceil((b?.length ?? 0) * 1.5)));
    return b.subarray(0, count);
  }

  /** Queued work runs in order; a task that fails does not stop the ones after it. */
  private enqueue(task: () => Promise<void>): void {
    this.queued++;
    this.pending = this.pending
      .then(task)
      .catch((err: Error) => this.markLost(0, 0, err))
      .finally(() => this.queued--);
  }

  protected override async release(): Promise<void> {
    await this.pending;
    await Promise.all([this.projections.release(), this.kernel.close(), this.mirror?.close(), this.resident?.close()]);
  }
}

/** upper[r] = logits[r] + rowSlack[r]: its own loop, so it stays monomorphic. */
function upperBounds(logits: Float64Array, rowSlack: Float32Array, count: number, upper: Float64Array): void {
  for (let r = 0; r < count; r++) upper[r] = logits[r] + rowSlack[r];
}
