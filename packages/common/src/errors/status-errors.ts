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

/** A bound was reached (a queue, calls in flight, rows a store can hold): try later, elsewhere, or with less. */
export class ResourceExhaustedError extends YocoError {
  constructor(message: string, code = 'RESOURCE_EXHAUSTED') {
    super(code, message);
  }
}

/** The system is not in a state the request needs (another head, another width, another shard index). */
export class FailedPreconditionError extends YocoError {
  constructor(message: string, code = 'FAILED_PRECONDITION') {
    super(code, message);
  }
}

/** Past the end of what exists (a consistency token past the newest change the store holds). */
export class OutOfRangeError extends YocoError {
  constructor(message: string, code = 'OUT_OF_RANGE') {
    super(code, message);
  }
}

/** The work ran and failed (a job's reason is in the message). */
export class AbortedError extends YocoError {
  constructor(message: string, code = 'ABORTED') {
    super(code, message);
  }
}

/** The caller gave up on the call (a cancel, a losing hedge); its work was skipped. */
export class CancelledError extends YocoError {
  constructor(message = 'the call was cancelled') {
    super('CANCELLED', message);
  }
}

/** The caller did not prove who it is: no token, a malformed, forged or expired one. */
export class UnauthenticatedError extends YocoError {
  constructor(message: string, code = 'UNAUTHENTICATED') {
    super(code, message);
  }
}

/** The caller is known but may not do this: its role, or its certificate's identity, does not allow it. */
export class PermissionDeniedError extends YocoError {
  constructor(message: string, code = 'PERMISSION_DENIED') {
    super(code, message);
  }
}

/** What the request would create is there already (a face enrolled under another subject). */
export class AlreadyExistsError extends YocoError {
  constructor(message: string, code = 'ALREADY_EXISTS') {
    super(code, message);
  }
}
