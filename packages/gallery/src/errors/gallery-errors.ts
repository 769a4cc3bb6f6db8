import { FailedPreconditionError, InvalidArgumentError, NotFoundError, shown, YocoError } from '@yoco/common';

export class InvalidSubjectIdError extends InvalidArgumentError {
  constructor(id: unknown) {
    super(`subject id ${typeof id === 'string' ? shown(id) : String(id)} is invalid: use 1-128 characters of A-Z a-z 0-9 . _ : @ -`, 'SUBJECT_ID');
  }
}

export class SubjectNotFoundError extends NotFoundError {
  constructor(readonly subjectId: string) {
    super(`subject '${subjectId}' is not enrolled`, 'SUBJECT_NOT_FOUND');
  }
}

/** The store was written for another vector width (or head) than the caller's. */
export class StoreMismatchError extends FailedPreconditionError {
  constructor(message: string) {
    super(message, 'STORE_MISMATCH');
  }
}

/** A stored template record that cannot be read or used (corrupt, truncated, wrong width, bad values). */
export class TemplateRecordError extends YocoError {
  constructor(readonly templateId: string, reason: string) {
    super('BAD_TEMPLATE', `template ${templateId}: ${reason}`);
  }
}

/** A Redis too old for what the follower relies on (XINFO's entries-added and max-deleted-entry-id, Redis 7.0). */
export class RedisVersionError extends FailedPreconditionError {
  constructor(message: string) {
    super(message, 'REDIS_VERSION');
  }
}
