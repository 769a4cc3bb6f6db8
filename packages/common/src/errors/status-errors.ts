import { YocoError } from './yoco-error.js';

/** The request itself is wrong (bad id, bad vector, bad option); retrying it unchanged cannot help. */
export class InvalidArgumentError extends YocoError {
  constructor(message: string, code = 'INVALID_ARGUMENT') {
    super(code, message);
  }
}

/** A dependency (Redis, a shard, the embedder) cannot be reached now; `accepted` says what, if anything, was taken in. */
export class UnavailableError extends YocoError {
  constructor(message: string, code = 'UNAVAILABLE') {
    super(code, message);
  }
}

export class DeadlineError extends YocoError {
  constructor(message: string) {
    super('DEADLINE_EXCEEDED', message);
  }
}

export class NotImplementedError extends YocoError {
  constructor(message: string) {
    super('UNIMPLEMENTED', message);
  }
}

export class NotFoundError extends YocoError {
  constructor(message: string, code = 'NOT_FOUND') {
    super(code, message);
  }
}
