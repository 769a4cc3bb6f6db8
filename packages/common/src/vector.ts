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

/**
 * Little-endian float32 bytes as a Float32Array (a copy: the bytes may sit at
 * an offset a Float32Array cannot view). Throws VECTOR_LENGTH for a ragged tail.
 */
export function f32FromBytes(bytes: Uint8Array, what = 'vector'): Float32Array {
  if (bytes.length % 4 !== 0) throw new InvalidArgumentError(`${what} bytes (${bytes.length}) are not whole float32 values`, 'VECTOR_LENGTH');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

/** What an error message may show of a caller's string: enough to recognise it, never a whole long value. */
export function shown(s: string, max = 40): string {
  return s.length > max ? `'${s.slice(0, max)}...' (${s.length} chars)` : `'${s}'`;
}
