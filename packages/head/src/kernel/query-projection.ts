/**
 * u = A q, the query half of the head's first layer, computed in a scan
 * kernel's own memory by its own threads (dot-function.ts). ONNX Runtime did
 * this before: the same GEMV, but each run was a hand-off to ORT's pool and
 * a promise back, 0.3 ms over the 0.25 ms that reading A's 7.9 MB takes
 * (docs/int8.md); here the scan's helper, already woken for the scan that
 * follows, shares the rows of A with the calling thread.
 *
 * Memory (bytes from `offset`): [A: hidden rows of db | queries: MAX x db |
 * out: hidden x MAX f32], db = dim rounded up to 16 floats (the padding is
 * zero in A and in the queries).
 */
import type { ScanPool } from './scan-pool.js';
import { align64 } from './wasm-encoding.js';

/** Queries one project() call takes. */
export const PROJECT_MAX_QUERIES = 32;
/** Rows of A a thread takes at a time from the shared job. */
const SHARED_BLOCK = 32;
/** Below this many multiply-adds the calling thread projects alone: a hand-off costs more. */
const MIN_SHARED_WORK = 1 << 18;

export type DotFunction = (a: number, q: number, nq: number, out: number, n: number, db: number) => void;

/** The weights a projection needs: the head's W1, [hidden, 2 dim] row-major, of which A is the first dim columns. */
export interface ProjectionWeights {
  dim: number;
  hidden: number;
  w1: Float32Array;
}

export class QueryProjection {
  private readonly db: number;
  private readonly qOffset: number;
  private readonly outOffset: number;

  /** Bytes the region takes in a kernel's memory (whole cache lines); 0 without weights. */
  static bytes(weights: ProjectionWeights | undefined): number {
    if (!weights) return 0;
    const db = rowBytes(weights.dim);
    return align64(weights.hidden * db + PROJECT_MAX_QUERIES * db + weights.hidden * PROJECT_MAX_QUERIES * 4);
  }

  /**
   * The projection in a scan kernel's memory at `offset` (bytes(weights) of
   * room there), run by the calling thread's instance of the kernel's module
   * and by its pool, whose functions `fns` name; undefined without weights.
   */
  static inKernel(memory: WebAssembly.Memory, offset: number, weights: ProjectionWeights | undefined, pool: ScanPool, instance: WebAssembly.Instance, fns: string[]): QueryProjection | undefined {
    if (!weights) return undefined;
    return new QueryProjection(memory, offset, weights, pool, instance.exports.dot as DotFunction, fns.indexOf('dot'));
  }

  /**
   * The region at `offset` of `memory` (already that large) gets A; `dot` is
   * the calling thread's instance of the function, `fn` its index among the
   * pool's functions.
   */
  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly offset: number,
    private readonly weights: ProjectionWeights,
    private readonly pool: ScanPool,
    private readonly dot: DotFunction,
    private readonly fn: number,
  ) {
    const { dim, hidden, w1 } = weights;
    this.db = rowBytes(dim);
    this.qOffset = offset + hidden * this.db;
    this.outOffset = this.qOffset + PROJECT_MAX_QUERIES * this.db;
    const stride = this.db / 4;
    const a = new Float32Array(memory.buffer, offset, hidden * stride);
    a.fill(0);
    for (let h = 0; h < hidden; h++) a.set(w1.subarray(h * 2 * dim, h * 2 * dim + dim), h * stride);
  }

  /** u for each of the nq queries in x (dim floats each, row-major): nq x hidden floats. */
  project(x: Float32Array, nq: number): Float32Array {
    const { dim, hidden } = this.weights;
    if (!(Number.isInteger(nq) && nq >= 1 && nq <= PROJECT_MAX_QUERIES)) throw new RangeError(`project takes 1 to ${PROJECT_MAX_QUERIES} queries, got ${nq}`);
    if (x.length < nq * dim) throw new RangeError(`project needs ${nq * dim} floats, got ${x.length}`);
    const stride = this.db / 4;
    const q = new Float32Array(this.memory.buffer, this.qOffset, nq * stride);
    if (stride === dim) q.set(x.subarray(0, nq * dim));
    else {
      q.fill(0);
      for (let k = 0; k < nq; k++) q.set(x.subarray(k * dim, (k + 1) * dim), k * stride);
    }
    const job = { p: this.offset, u: this.qOffset, w: nq, out: this.outOffset, n: hidden, hb: this.db };
    const self = (j: typeof job) => this.dot(j.p, j.u, j.w, j.out, j.n, j.hb);
    if (this.pool.size === 0 || nq * hidden * dim < MIN_SHARED_WORK) self(job);
    else this.pool.shareRows(job, this.db, 4 * nq, SHARED_BLOCK, self, this.fn);
    const out = new Float32Array(this.memory.buffer, this.outOffset, hidden * nq);
    const u = new Float32Array(nq * hidden);
    for (let i = 0; i < hidden; i++) for (let k = 0; k < nq; k++) u[k * hidden + i] = out[i * nq + k];
    return u;
  }
}

/** A row of A (and a query) in bytes: dim floats rounded up to whole 64-byte turns of the loop. */
function rowBytes(dim: number): number {
  return Math.ceil(dim / 16) * 64;
}
