import { YocoError } from './yoco-error.js';

/** A vector of the wrong length for the head or model it is meant for. */
export class VectorLengthError extends YocoError {
  readonly expected: number;
  readonly actual: number;

  constructor(expected: number, actual: number, what = 'vector') {
    super('VECTOR_LENGTH', `${what} has ${actual} values, expected ${expected}`);
    this.expected = expected;
    this.actual = actual;
  }
}

/** A vector holding NaN or an infinity: it would poison every score it touches. */
export class NonFiniteVectorError extends YocoError {
  readonly position: number;

  constructor(position: number, value: number, what = 'vector') {
    super('VECTOR_NOT_FINITE', `${what} holds a non-finite value (${value}) at position ${position}`);
    this.position = position;
  }
}

/** A finite value too large for any real embedding: refused so that no score downstream can overflow. */
export class VectorRangeError extends YocoError {
  readonly position: number;

  constructor(position: number, value: number, limit: number, what = 'vector') {
    super('VECTOR_RANGE', `${what} holds ${value} at position ${position}: values must lie within ±${limit}`);
    this.position = position;
  }
}
