import { status as Status } from '@grpc/grpc-js';
import { errorCodeOf, isServiceError, statusName } from '@yoco/rpc';

/**
 * A failed Matcher call: its gRPC status (code and name), YOCO's own error
 * code from the `yoco-error-code` trailer ('' when none: SUBJECT_NOT_FOUND,
 * OUTCOME_UNKNOWN, SHARDS_UNAVAILABLE, ...), and the server's words.
 */
export class MatcherError extends Error {
  readonly status: string;

  constructor(
    readonly code: number,
    readonly details: string,
    readonly yocoCode: string,
  ) {
    super(`${statusName(code)}${yocoCode ? ` (${yocoCode})` : ''}: ${details}`);
    this.name = 'MatcherError';
    this.status = statusName(code);
  }

  static from(err: unknown): MatcherError {
    if (err instanceof MatcherError) return err;
    if (isServiceError(err)) return new MatcherError(err.code, err.details, errorCodeOf(err));
    return new MatcherError(Status.UNKNOWN, err instanceof Error ? err.message : String(err), '');
  }

  /** The Matcher (or what it needs) was not there: worth a retry, elsewhere or later. */
  get unavailable(): boolean {
    return this.code === Status.UNAVAILABLE;
  }
}
