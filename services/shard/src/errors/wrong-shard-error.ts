import { FailedPreconditionError } from '@yoco/common';

/** The caller meant another shard index (a reused address): answering would put the wrong subjects in its merge. */
export class WrongShardError extends FailedPreconditionError {
  constructor(expected: number, actual: number) {
    super(`this is shard ${actual}, not shard ${expected}: the address now belongs to another shard`, 'WRONG_SHARD');
  }
}
