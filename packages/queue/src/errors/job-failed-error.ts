import { AbortedError } from '@yoco/common';

/** A job finished but failed; carries BullMQ's reason. */
export class JobFailedError extends AbortedError {
  constructor(readonly jobId: string, reason: string) {
    super(`job ${jobId} failed: ${reason}`, 'JOB_FAILED');
  }
}
