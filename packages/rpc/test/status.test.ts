import { FailedPreconditionError, InvalidArgumentError, NotFoundError, ResourceExhaustedError, YocoError } from '@yoco/common';
import { CapacityError } from '@yoco/head';
import { SubjectNotFoundError } from '@yoco/gallery';
import { Status, toServiceError } from '@yoco/rpc';
import { describe, expect, it } from 'vitest';

class MadeUpError extends InvalidArgumentError {
  constructor() {
    super('a code no table has heard of', 'MADE_UP');
  }
}

describe('errors choose their status by class', () => {
  it('a new error class gets the status of the class it extends; its code travels in the trailer', () => {
    const e = toServiceError(new MadeUpError());
    expect(e.code).toBe(Status.INVALID_ARGUMENT);
    expect(e.metadata?.get('yoco-error-code')).toEqual(['MADE_UP']);
    expect(toServiceError(new SubjectNotFoundError('x')).code).toBe(Status.NOT_FOUND);
    expect(toServiceError(new NotFoundError('gone', 'WHATEVER')).code).toBe(Status.NOT_FOUND);
    expect(toServiceError(new CapacityError(10, 10, 1)).code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(toServiceError(new ResourceExhaustedError('full')).code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(toServiceError(new FailedPreconditionError('other head', 'HEAD_MISMATCH')).code).toBe(Status.FAILED_PRECONDITION);
  });

  it('anything not of a status class is INTERNAL, with its message', () => {
    expect(toServiceError(new YocoError('SOMETHING', 'oops')).code).toBe(Status.INTERNAL);
    const plain = toServiceError(new TypeError('x is undefined'));
    expect(plain.code).toBe(Status.INTERNAL);
    expect(plain.details).toBe('internal error: x is undefined');
    expect(toServiceError('a string').details).toBe('internal error: a string');
  });
});
