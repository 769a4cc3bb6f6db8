import { FailedPreconditionError, InvalidArgumentError } from '@yoco/common';
import { ReplyError, type Redis } from 'ioredis';
import { StoreKeys } from './keys.js';
import { loadScript } from './scripts.js';

/** The change in progress: the next epoch, its k, and where in the change stream it began. */
export interface TopologyChange {
  epoch: number;
  k: number;
  startedAt: number;
  fromId: string;
}

/** The store of record's topology: the epoch Identify is answered by and its k. */
export interface Topology {
  epoch: number;
  k: number;
  /** The highest epoch ever begun (an aborted one's number is not reused). */
  lastEpoch: number;
  switchedAt: number;
  previous?: { epoch: number; k: number };
  next?: TopologyChange;
}

/** The most shard indexes a topology may have (the proto's and the shard config's bound). */
export const MAX_SHARD_COUNT = 4096;

const TOPOLOGY = loadScript('topology');

type Scripted = Redis & { yocoTopology(...args: (string | number)[]): Promise<string> };

/** A change that cannot be made now (one in progress, none to abort, the same k). */
export class TopologyChangeError extends FailedPreconditionError {
  constructor(code: string, message: string) {
    super(message, `TOPOLOGY_${code}`);
  }
}

/**
 * Reads and changes the topology. Every change is one Lua call (seed, begin,
 * abort, commit), so concurrent callers are ordered by Redis; commit names the
 * epoch it commits and is a no-op when that is no longer the change in progress.
 */
export class TopologyStore {
  private readonly redis: Scripted;
  private readonly keys: StoreKeys;

  constructor(redis: Redis, prefix = 'yoco:') {
    if (!('yocoTopology' in redis)) redis.defineCommand('yocoTopology', { numberOfKeys: 2, lua: TOPOLOGY });
    this.redis = redis as Scripted;
    this.keys = new StoreKeys(prefix);
  }

  async read(): Promise<Topology | undefined> {
    const raw = await this.redis.get(this.keys.topology);
    return raw ? parse(raw) : undefined;
  }

  /** The topology on record, written first with `k` when there is none (the first shard's SHARD_COUNT). */
  async seed(k: number): Promise<Topology> {
    return this.run('seed', checkK(k));
  }

  /** Begins a change to `k` shard indexes: refused while another is in progress, or when k is already the count. */
  async begin(k: number): Promise<Topology> {
    return this.run('begin', checkK(k));
  }

  abort(): Promise<Topology> {
    return this.run('abort', 0);
  }

  /** Makes `epoch` (the change in progress) current; returns the topology either way. */
  commit(epoch: number): Promise<Topology> {
    return this.run('commit', epoch);
  }

  private async run(op: string, arg: number): Promise<Topology> {
    try {
      return parse(await this.redis.yocoTopology(this.keys.topology, this.keys.changes, op, arg, Date.now()));
    } catch (err) {
      // The script's refusals read 'CODE message'; anything else is Redis' own.
      const m = err instanceof ReplyError ? /^([A-Z_]+) (.*)$/s.exec((err as Error).message) : null;
      if (m) throw new TopologyChangeError(m[1], m[2]);
      throw err;
    }
  }
}

function checkK(k: number): number {
  if (!Number.isInteger(k) || k < 1 || k > MAX_SHARD_COUNT) throw new InvalidArgumentError(`shard count ${k} is not a whole number from 1 to ${MAX_SHARD_COUNT}`, 'SHARD_COUNT');
  return k;
}

function parse(raw: string): Topology {
  const t = JSON.parse(raw) as Partial<Topology>;
  if (!Number.isInteger(t.epoch) || !Number.isInteger(t.k)) throw new Error(`the topology on record is not one: ${raw.slice(0, 200)}`);
  return { epoch: t.epoch!, k: t.k!, lastEpoch: t.lastEpoch ?? t.epoch!, switchedAt: t.switchedAt ?? 0, previous: t.previous, next: t.next };
}
