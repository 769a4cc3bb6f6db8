import { status as Status, Metadata, type ServiceError } from '@grpc/grpc-js';
import { YocoError } from '@yoco/common';
import type { Logger } from 'pino';

/** Every YocoError code that is not INTERNAL, mapped to its gRPC status in one place. */
const BY_CODE: Record<string, Status> = {
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  VECTOR_LENGTH: Status.INVALID_ARGUMENT,
  VECTOR_NOT_FINITE: Status.INVALID_ARGUMENT,
  VECTOR_RANGE: Status.INVALID_ARGUMENT,
  VECTOR_NORM: Status.INVALID_ARGUMENT,
  THRESHOLD: Status.INVALID_ARGUMENT,
  REQUEST_ID: Status.INVALID_ARGUMENT,
  QUERIES: Status.INVALID_ARGUMENT,
  SUBJECT_ID: Status.INVALID_ARGUMENT,
  TOP_K: Status.INVALID_ARGUMENT,
  PROBE: Status.INVALID_ARGUMENT,
  IMAGE: Status.INVALID_ARGUMENT,
  TOKEN: Status.INVALID_ARGUMENT,
  NOT_FOUND: Status.NOT_FOUND,
  SUBJECT_NOT_FOUND: Status.NOT_FOUND,
  UNAVAILABLE: Status.UNAVAILABLE,
  LOADING: Status.UNAVAILABLE,
  SHARDS_UNAVAILABLE: Status.UNAVAILABLE,
  STORE_UNAVAILABLE: Status.UNAVAILABLE,
  OUTCOME_UNKNOWN: Status.UNAVAILABLE,
  STALE: Status.UNAVAILABLE,
  CANCELLED: Status.CANCELLED,
  CAPACITY: Status.RESOURCE_EXHAUSTED,
  WRONG_SHARD: Status.FAILED_PRECONDITION,
  HEAD_MISMATCH: Status.FAILED_PRECONDITION,
  REDIS_VERSION: Status.FAILED_PRECONDITION,
  DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
  UNIMPLEMENTED: Status.UNIMPLEMENTED,
  STORE_MISMATCH: Status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: Status.RESOURCE_EXHAUSTED,
  ABORTED: Status.ABORTED,
  JOB_FAILED: Status.ABORTED,
};

export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === 'object' && err !== null && typeof (err as ServiceError).code === 'number' && 'details' in err;
}

/** Trailers carrying a YocoError code (`yoco-error-code`); empty when there is none. */
export function errorMetadata(errorCode: string): Metadata {
  const metadata = new Metadata();
  if (errorCode) metadata.set('yoco-error-code', errorCode);
  return metadata;
}

/** The status a failure goes out with; the YocoError code travels in the `yoco-error-code` trailer. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  if (isServiceError(err)) return { code: err.code, details: err.details, metadata: err.metadata };
  if (err instanceof YocoError) return { code: BY_CODE[err.code] ?? Status.INTERNAL, details: err.message, metadata: errorMetadata(err.code) };
  return { code: Status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` };
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
