import { FailedPreconditionError, InvalidArgumentError, NotFoundError, OutOfRangeError, shown, UnavailableError, YocoError } from '@yoco/common';

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

/**
 * A consistency token past the newest change of a store read after the token
 * was handed out: the write it stands for is not in this Redis (a failover to
 * a replica that never had it, or a token from another store). Waiting would
 * only run into the deadline.
 */
export class UnknownTokenError extends OutOfRangeError {
  constructor(readonly token: string, lastId: string) {
    super(`consistency token ${token} is past the newest change in the store (${lastId}): the write it stands for is not there (lost when Redis failed over to a replica that never had it, or the token is from another store); check it with GetJob or GetSubject and write it again`, 'TOKEN_UNKNOWN');
  }
}

/** A gallery write refused while a backup or a restore holds the store's fence: nothing was written; retry shortly. */
export class StoreFencedError extends UnavailableError {
  constructor() {
    super('a backup or restore holds the store: the write waits until it is done (nothing was written)', 'FENCED');
  }
}

/** A backup file that cannot be used (not one, damaged, cut short, another format): refused before anything is written. */
export class BackupFileError extends FailedPreconditionError {
  constructor(message: string) {
    super(message, 'BACKUP_FILE');
  }
}

/** Another backup or restore holds the store's fence. */
export class FenceHeldError extends UnavailableError {
  constructor(holder: string) {
    super(`another backup or restore holds the store (fence ${holder}); try again once it is done (the fence expires on its own if its holder died)`, 'FENCE_HELD');
  }
}
