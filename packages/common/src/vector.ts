import { InvalidArgumentError, NonFiniteVectorError, VectorLengthError } from './errors/index.js';

/**
 * Checks that `values` holds whole vectors of `dim` finite numbers. `count`
 * pins the number of vectors when the caller knows it (a single query: 1).
 */
export function assertVectors(values: ArrayLike<number>, dim: number, what = 'vector', count?: number): number {
  const n = values.length / dim;
  if (values.length === 0 || !Number.isInteger(n) || (count !== undefined && n !== count)) {
    throw new VectorLengthError(count === undefined ? dim : dim * count, values.length, what);
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // v - v is NaN exactly when v is NaN or infinite; one compare per value.
    if (v - v !== 0) throw new NonFiniteVectorError(i, v, what);
  }
  return n;
}

/**
 * Little-endian float32 bytes as a Float32Array (a copy: the bytes may sit at
 * an offset a Float32Array cannot view). Throws VECTOR_LENGTH for a ragged tail.
 */
export function f32FromBytes(bytes: Uint8Array, what = 'vector'): Float32Array {
  if (bytes.length % 4 !== 0) throw new InvalidArgumentError(`${what} bytes (${bytes.length}) are not whole float32 values`, 'VECTOR_LENGTH');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}
