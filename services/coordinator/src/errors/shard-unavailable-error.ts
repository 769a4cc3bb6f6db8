import { UnavailableError } from '@yoco/common';
import { Status } from '@yoco/rpc';

/** One shard index could not answer; carries what each replica said. */
export class ShardUnavailableError extends UnavailableError {
  constructor(readonly index: number, readonly reasons: string[], readonly codes: number[] = []) {
    super(`shard ${index} unavailable: ${reasons.length ? reasons.join('; ') : 'no replica known'}`, 'SHARDS_UNAVAILABLE');
  }

  /** Every replica refused for load (RESOURCE_EXHAUSTED): the shard is up, just full. */
  get overloaded(): boolean {
    return this.codes.length > 0 && this.codes.every((c) => c === Status.RESOURCE_EXHAUSTED);
  }
}
