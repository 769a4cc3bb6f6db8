/**
 * The scan in ONNX Runtime with P kept inside the sessions, for GPUs: rows
 * are sealed in segments of `segmentRows`, each baked into a session of its
 * own as an initializer (so on a CUDA provider P is copied to the device once
 * and stays there), and the rows since the last seal are a growing segment
 * passed with each call. In onnxruntime-node, IO binding is WebGPU-only: an
 * initializer is the way to keep a matrix resident on CUDA.
 *
 * Per segment: logits = relu(P + u) · w2 (b2 is the caller's), float32, so
 * the answers are the float32 engine's up to the order of summation.
 */
import { GraphBuilder } from '@yoco/onnx';
import { Tensor, type InferenceSession } from 'onnxruntime-node';
import type { Head } from './head.js';
import { createSession, type RuntimeOptions } from './ort-session.js';

export interface ResidentOptions {
  /** Rows per sealed segment (default 65536). */
  segmentRows?: number;
}

function scanModel(hidden: number, w2: Float32Array, p?: Float32Array, rows?: number): Uint8Array {
  const g = new GraphBuilder(p ? 'resident_segment' : 'growing_segment');
  const u = g.input('u', [1, hidden]);
  const rowsIn = p ? g.initializer('p', p, [rows!, hidden]) : g.input('p', ['n', hidden]);
  const relu = g.op('Relu', [g.op('Add', [rowsIn, u])]);
  g.output(g.op('MatMul', [relu, g.initializer('w2', w2.subarray(0, hidden).slice(), [hidden, 1])], {}, { output: 'y' }), [p ? rows! : 'n', 1]);
  return g.toBytes({ opset: 17 });
}

export class ResidentScan {
  private readonly segmentRows: number;
  private readonly segments: Promise<InferenceSession>[] = [];
  private growing: Promise<InferenceSession> | undefined;
  private closed = false;

  constructor(
    private readonly head: Head,
    /** Row i of P as the float32 kernel holds it (H floats). */
    private readonly rowAt: (i: number) => Float32Array,
    private readonly runtime: RuntimeOptions,
    options: ResidentOptions = {},
  ) {
    const s = options.segmentRows ?? 65536;
    if (!Number.isInteger(s) || s < 1) throw new RangeError(`resident segmentRows must be a positive integer, got ${s}`);
    this.segmentRows = s;
  }

  /** Sealed segments so far. */
  get sealed(): number {
    return this.segments.length;
  }

  /** out[i] = w2 · relu(P_i + u) for the first n rows; the first scan past a segment's end seals it (one copy of its rows into a session). */
  async run(u: Float32Array, out: Float32Array, n: number): Promise<void> {
    const H = this.head.hidden;
    const S = this.segmentRows;
    const full = Math.floor(n / S);
    while (this.segments.length < full) this.segments.push(this.seal(this.segments.length));
    const uT = new Tensor('float32', u.subarray(0, H), [1, H]);
    const parts: Promise<void>[] = [];
    for (let s = 0; s < full; s++) {
      parts.push(this.segments[s].then(async (session) => out.set((await session.run({ u: uT })).y.data as Float32Array, s * S)));
    }
    const tail = n - full * S;
    if (tail > 0) {
      const p = new Float32Array(tail * H);
      for (let i = 0; i < tail; i++) p.set(this.rowAt(full * S + i).subarray(0, H), i * H);
      this.growing ??= createSession(scanModel(H, this.head.w2), this.runtime);
      const session = await this.growing;
      parts.push(session.run({ u: uT, p: new Tensor('float32', p, [tail, H]) }).then((r) => out.set(r.y.data as Float32Array, full * S)));
    }
    await Promise.all(parts);
  }

  private async seal(index: number): Promise<InferenceSession> {
    const H = this.head.hidden;
    const S = this.segmentRows;
    const p = new Float32Array(S * H);
    for (let i = 0; i < S; i++) p.set(this.rowAt(index * S + i).subarray(0, H), i * H);
    return createSession(scanModel(H, this.head.w2, p, S), this.runtime);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sessions = await Promise.allSettled([...this.segments, ...(this.growing ? [this.growing] : [])]);
    await Promise.all(sessions.flatMap((s) => (s.status === 'fulfilled' ? [s.value.release()] : [])));
  }
}
