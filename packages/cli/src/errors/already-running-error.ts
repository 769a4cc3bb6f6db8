import { FailedPreconditionError } from '@yoco/common';

/** A second `npm start` on the same data directory. */
export class AlreadyRunningError extends FailedPreconditionError {
  constructor(readonly pid: number, readonly address: string, dir: string) {
    super(`YOCO is already running (pid ${pid}) on ${address} with data directory ${dir}: stop it first (Ctrl-C in its terminal, or kill ${pid}), or give this one another YOCO_DATA_DIR`, 'ALREADY_RUNNING');
  }
}
