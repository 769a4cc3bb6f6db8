import { InvalidArgumentError, NonFiniteVectorError, VectorLengthError, VectorRangeError } from './errors/index.js';

/**
 * The largest magnitude a vector entry may have. Real embeddings are unit
 * vectors or close to it (entries well below 10); 1e6 leaves room for any
 * unnormalised model while keeping every product and sum in the head far
 * below float32's 3.4e38, so a crafted vector cannot turn a score into
 * Infinity or NaN.
 */
export const MAX_VECTOR_VALUE = 1e6;

/**
 * Checks that `values` holds whole vectors of `dim` finite numbers within
 * ±MAX_VECTOR_VALUE. `count` pins the number of vectors when the caller
 * knows it (a single query: 1).
 */
export function assertVectors(values: ArrayLike<number>, dim: number, what = 'vector', count?: number): number {
  const n = values.length / dim;
  if (values.length === 0 || !Number.isInteger(n) || (count !== undefined && n !== count)) {
    throw new VectorLengthError(count === undefined ? dim : dim * count, values.length, what);
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // v - v is NaN exactly when v is NaN or infinite; one compare per value, a second only for large ones.
    if (v - v !== 0) throw new NonFiniteVectorError(i, v, what);
    if (v > MAX_VECTOR_VALUE || v < -MAX_VECTOR_VALUE) throw new VectorRangeError(i, v, MAX_VECTOR_VALUE, what);
  }
  return n;
}

/** The L2 norm of one vector. */
export function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

// The vector codec. Every hop carries a vector as the same bytes: little-endian
// float32, 4 per value (the Matcher's Vector.f32le, the embedder's reply, the
// shards' queries, enrolment jobs (base64 of these bytes: BullMQ data is JSON),
// the template record). Decoding copies once into a Float32Array; encoding is a
// view, no copy. Validation (assertVectors) happens where bytes come from
// outside: decodeVectors at the public API, the shards' API and the store.
if (new Uint8Array(new Float32Array([1]).buffer)[3] !== 0x3f) throw new Error('YOCO needs a little-endian host: vectors are stored as little-endian float32');

/** A vector's bytes (a view of the same memory, not a copy). */
export function f32leBytes(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * Little-endian float32 bytes as a Float32Array (a copy: the bytes may sit at
 * an offset a Float32Array cannot view). Throws VECTOR_LENGTH for a ragged tail.
 */
export function f32FromBytes(bytes: Uint8Array, what = 'vector'): Float32Array {
  if (bytes.length % 4 !== 0) throw new InvalidArgumentError(`${what} bytes (${bytes.length}) are not whole float32 values`, 'VECTOR_LENGTH');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

/**
 * A vector as a message carries it: its f32le bytes when set, else the
 * repeated floats older callers send. Not validated: see decodeVectors.
 */
export function vectorFromWire(bytes: Uint8Array | null | undefined, values: ArrayLike<number> | null | undefined, what = 'vector'): Float32Array {
  return bytes && bytes.length > 0 ? f32FromBytes(bytes, what) : Float32Array.from(values ?? []);
}

/** The decode of a trust boundary: the vector(s) of a message, checked (assertVectors). Returns them and their count. */
export function decodeVectors(bytes: Uint8Array | null | undefined, values: ArrayLike<number> | null | undefined, dim: number, what = 'vector', count?: number): { vectors: Float32Array; count: number } {
  const vectors = vectorFromWire(bytes, values, what);
  return { vectors, count: assertVectors(vectors, dim, what, count) };
}

/** What an error message may show of a caller's string: enough to recognise it, never a whole long value. */
export function shown(s: string, max = 40): string {
  return s.length > max ? `'${s.slice(0, max)}...' (${s.length} chars)` : `'${s}'`;
}
