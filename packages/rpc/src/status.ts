import { status as Status, Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  AbortedError,
  AlreadyExistsError,
  CancelledError,
  DeadlineError,
  FailedPreconditionError,
  getErrorMessage,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  YocoError,
} from '@yoco/common';
import type { Logger } from 'pino';

/**
 * The gRPC status of each kind of error, by class: every error of ours
 * extends one of these (common/errors/status-errors.ts), so a new error class
 * states its status where it is declared, and anything else is INTERNAL. The
 * YocoError's string code travels beside it, in the `yoco-error-code` trailer.
 */
const BY_CLASS: [new (...args: never[]) => YocoError, Status][] = [
  [InvalidArgumentError, Status.INVALID_ARGUMENT],
  [NotFoundError, Status.NOT_FOUND],
  [UnavailableError, Status.UNAVAILABLE],
  [DeadlineError, Status.DEADLINE_EXCEEDED],
  [ResourceExhaustedError, Status.RESOURCE_EXHAUSTED],
  [FailedPreconditionError, Status.FAILED_PRECONDITION],
  [AbortedError, Status.ABORTED],
  [OutOfRangeError, Status.OUT_OF_RANGE],
  [CancelledError, Status.CANCELLED],
  [NotImplementedError, Status.UNIMPLEMENTED],
  [UnauthenticatedError, Status.UNAUTHENTICATED],
  [PermissionDeniedError, Status.PERMISSION_DENIED],
  [AlreadyExistsError, Status.ALREADY_EXISTS],
];

/** The status an error of ours goes out with (INTERNAL for anything not of a status class). */
export function statusOf(err: YocoError): Status {
  for (const [cls, status] of BY_CLASS) if (err instanceof cls) return status;
  return Status.INTERNAL;
}

export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === 'object' && err !== null && typeof (err as ServiceError).code === 'number' && 'details' in err;
}

/** Trailers carrying a YocoError code (`yoco-error-code`); empty when there is none. */
export function errorMetadata(errorCode: string): Metadata {
  const metadata = new Metadata();
  if (errorCode) metadata.set('yoco-error-code', errorCode);
  return metadata;
}

/** The YocoError code a failed call carried in its `yoco-error-code` trailer ('' when none). */
export function errorCodeOf(err: { metadata?: Metadata }): string {
  const metadata = err.metadata instanceof Metadata ? err.metadata : undefined;
  return String(metadata?.get('yoco-error-code')[0] ?? '');
}

/** The status a failure goes out with; the YocoError code travels in the `yoco-error-code` trailer. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  if (isServiceError(err)) return { code: err.code, details: err.details, metadata: err.metadata };
  if (err instanceof YocoError) return { code: statusOf(err), details: err.message, metadata: errorMetadata(err.code) };
  return { code: Status.INTERNAL, details: `internal error: ${getErrorMessage(err)}` };
}

/** toServiceError, logged as servers log failures: errors of ours at error level, refusals at debug. */
export function failedCall(err: unknown, method: string, logger: Logger): Partial<ServiceError> & { code: number } {
  const e = toServiceError(err);
  const code = e.code ?? Status.INTERNAL;
  if (code === Status.INTERNAL || code === Status.UNKNOWN) logger.error({ err, method }, 'call failed');
  else logger.debug({ method, code: statusName(code), details: e.details }, 'call refused');
  return { ...e, code };
}

export function statusName(code: number): string {
  return Status[code] ?? String(code);
}

export { Status };
