import type { v1 } from '@yoco/rpc';
import { assertVectors, decodeVectors, FailedPreconditionError, InvalidArgumentError, norm, NotImplementedError } from '@yoco/common';
import type { CoordinatorConfig } from './config.js';
import type { EmbedderClient } from './embedder-client.js';

/** A probe as the Matcher's contract carries it: an image or a vector (as floats, or raw little-endian float32). */
export type Probe = v1.Probe__Output;

/**
 * Probes into checked vectors, for the read and the write path alike: the
 * public API's trust boundary for vectors (length, finite values, range, the
 * opt-in norm range), and images embedded by the embedder.
 */
export class ProbeReader {
  constructor(
    private readonly config: Pick<CoordinatorConfig, 'normRange'>,
    private readonly embedder: EmbedderClient | undefined,
  ) {}

  /** A vector probe's values, checked; image probes go through vectors(). */
  vectorOf(probe: Probe, dim: number, what = 'probe vector'): Float32Array {
    const { vectors: v } = decodeVectors(probe.vector?.f32le, probe.vector?.values, dim, what, 1);
    this.checkNorm(v, what);
    return v;
  }

  /** Every probe as a vector: vectors checked, images embedded together in one Embed call. */
  async vectors(probes: (Probe | null | undefined)[], dim: number, deadline: number, traceparent = ''): Promise<Float32Array[]> {
    return (await this.read(probes, dim, deadline, traceparent)).vectors;
  }

  /** As vectors, with the face each image probe's vector describes (face profiles; null otherwise). */
  async read(probes: (Probe | null | undefined)[], dim: number, deadline: number, traceparent = ''): Promise<{ vectors: Float32Array[]; faces: (v1.Face__Output | null)[] }> {
    const out: (Float32Array | undefined)[] = [];
    const faces: (v1.Face__Output | null)[] = probes.map(() => null);
    const images: { index: number; bytes: Buffer }[] = [];
    probes.forEach((probe, index) => {
      if (probe?.kind === 'vector') out[index] = this.vectorOf(probe, dim);
      else if (probe?.kind === 'image') images.push({ index, bytes: probe.image ?? Buffer.alloc(0) });
      else throw new InvalidArgumentError(`${probes.length > 1 ? `probe ${index}` : 'probe'} is empty: set an image or a vector`, 'PROBE');
    });
    if (images.length > 0) {
      if (!this.embedder) throw new NotImplementedError('image probes need an embedder (EMBEDDER_ADDRESS is not set); send a vector');
      const embedded = await this.embedder.embed(images.map((i) => i.bytes), deadline, probes.length > 1 ? images.map((i) => i.index) : undefined, traceparent);
      embedded.forEach(({ vector: v, face }, k) => {
        if (v.length !== dim) throw new FailedPreconditionError(`the embedder's model gives ${v.length}-wide vectors but the cluster's head takes ${dim}`, 'STORE_MISMATCH');
        assertVectors(v, dim, 'embedding', 1);
        out[images[k].index] = v;
        faces[images[k].index] = face;
      });
    }
    return { vectors: out as Float32Array[], faces };
  }

  /** The opt-in norm range (VECTOR_NORM_RANGE): a vector far from what the model emits is refused. */
  private checkNorm(v: Float32Array, what: string): void {
    const range = this.config.normRange;
    if (!range) return;
    const n = norm(v);
    if (n < range[0] || n > range[1]) throw new InvalidArgumentError(`${what} has norm ${n.toPrecision(4)}, outside the accepted ${range[0]}..${range[1]} (VECTOR_NORM_RANGE)`, 'VECTOR_NORM');
  }
}
