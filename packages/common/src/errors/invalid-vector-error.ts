import { InvalidArgumentError } from './status-errors.js';

/** A vector of the wrong length for the head or model it is meant for. */
export class VectorLengthError extends InvalidArgumentError {
  readonly expected: number;
  readonly actual: number;

  constructor(expected: number, actual: number, what = 'vector') {
    super(`${what} has ${actual} values, expected ${expected}`, 'VECTOR_LENGTH');
    this.expected = expected;
    this.actual = actual;
  }
}

/** A vector holding NaN or an infinity: it would poison every score it touches. */
export class NonFiniteVectorError extends InvalidArgumentError {
  readonly position: number;

  constructor(position: number, value: number, what = 'vector') {
    super(`${what} holds a non-finite value (${value}) at position ${position}`, 'VECTOR_NOT_FINITE');
    this.position = position;
  }
}

/** A finite value too large for any real embedding: refused so that no score downstream can overflow. */
export class VectorRangeError extends InvalidArgumentError {
  readonly position: number;

  constructor(position: number, value: number, limit: number, what = 'vector') {
    super(`${what} holds ${value} at position ${position}: values must lie within ±${limit}`, 'VECTOR_RANGE');
    this.position = position;
  }
}
