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
  /** Set when the change rolls out another head (its bytes under StoreKeys.head(id)). */
  headId?: string;
}

/** The store of record's topology: the epoch Identify is answered by and its k. */
export interface Topology {
  epoch: number;
  k: number;
  /** The highest epoch ever begun (an aborted one's number is not reused). */
  lastEpoch: number;
  switchedAt: number;
  /** The head the current epoch runs, once a rollout set one (before that: the store meta's). */
  headId?: string;
  previous?: { epoch: number; k: number; headId?: string };
  next?: TopologyChange;
}

/** The most shard indexes a topology may have (the proto's and the shard config's bound). */
export const MAX_SHARD_COUNT = 4096;

const TOPOLOGY = loadScript('topology');

type Scripted = Redis & { yocoTopology(...args: (string | number)[]): Promise<string> };

/** Head files are small (a 3840 x 512 head is 16 MB); this bounds what a rollout may store. */
export const MAX_HEAD_BYTES = 256 * 1024 * 1024;

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
    if (!('yocoTopology' in redis)) redis.defineCommand('yocoTopology', { numberOfKeys: 3, lua: TOPOLOGY });
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

  /**
   * Begins a change to `k` shard indexes (and, with `headId`, to another head,
   * whose bytes putHead stored first): refused while another is in progress,
   * or when nothing would change.
   */
  async begin(k: number, headId = ''): Promise<Topology> {
    if (headId && !(await this.redis.exists(this.keys.head(headId)))) throw new TopologyChangeError('NO_HEAD', `head ${headId} is not in the store: store it first`);
    return this.run('begin', checkK(k), headId);
  }

  /** Stores a head's ONNX bytes under its id (once: ids are content digests), for the shards of a rollout to load. */
  async putHead(headId: string, bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength > MAX_HEAD_BYTES) throw new InvalidArgumentError(`head file of ${bytes.byteLength} bytes is above ${MAX_HEAD_BYTES}`, 'HEAD_SIZE');
    await this.redis.set(this.keys.head(headId), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 'NX');
  }

  /** A head's bytes as a rollout stored them (undefined when none is stored under that id). */
  async getHead(headId: string): Promise<Uint8Array | undefined> {
    const b = await this.redis.getBuffer(this.keys.head(headId));
    return b ? new Uint8Array(b) : undefined;
  }

  abort(): Promise<Topology> {
    return this.run('abort', 0);
  }

  /** Makes `epoch` (the change in progress) current; returns the topology either way. */
  commit(epoch: number): Promise<Topology> {
    return this.run('commit', epoch);
  }

  private async run(op: string, arg: number, headId = ''): Promise<Topology> {
    try {
      return parse(await this.redis.yocoTopology(this.keys.topology, this.keys.changes, this.keys.meta, op, arg, Date.now(), headId));
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
  return { epoch: t.epoch!, k: t.k!, lastEpoch: t.lastEpoch ?? t.epoch!, switchedAt: t.switchedAt ?? 0, headId: t.headId, previous: t.previous, next: t.next };
}
