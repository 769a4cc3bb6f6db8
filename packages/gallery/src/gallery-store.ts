import { assertVectors } from '@yoco/common';
import type { Redis } from 'ioredis';
import { RedisVersionError, StoreFencedError, StoreMismatchError, SubjectNotFoundError, TemplateRecordError } from './errors/index.js';
import { assertSubjectId, SLOT_COUNT, slotOf } from './slots.js';
import { decodeCheckedTemplate, encodeTemplate, recordKeyId, templateIdOf, type Template } from './template-record.js';
import type { TemplateSealer } from './template-sealer.js';
import { compareStreamIds, STREAM_START } from './stream-id.js';
import { StoreKeys } from './keys.js';
import { loadScript } from './scripts.js';

export interface GalleryStoreOptions {
  /** Key prefix; every key the store touches starts with it (default 'yoco:'). */
  prefix?: string;
  /** The vector width every template must have. */
  dim: number;
  /** Approximate cap on the change stream's length (XADD MAXLEN ~); default 1,000,000. */
  streamMaxLen?: number;
  /** How long a subject's ordering barrier outlives its last replace/remove (s); default 86400. */
  barrierTtlSeconds?: number;
  /** Seals records as they are written and opens sealed ones (TEMPLATE_KEYS_FILE); plain records without. */
  sealer?: TemplateSealer;
}

export interface WriteOptions {
  /** The write's place in enqueue order; 0 (default) = unordered, always applies. */
  seq?: number;
  /** The fence's token, for the restore that holds it; other writes are refused while it is held (StoreFencedError). */
  fenceToken?: string;
}

export interface PutOptions extends WriteOptions {
  /** Replace every existing template of the subject. */
  replace?: boolean;
  /**
   * A bulk import: it never brings back a subject that was removed (its
   * tombstone stays until an explicit enrolment), so replaying an old import
   * file cannot undo a removal.
   */
  import?: boolean;
}

/** One entry of the change stream. Vectors are never in it: only ids, so a removal leaves no copy behind. */
export interface Change {
  id: string;
  op: 'put' | 'del';
  subjectId: string;
  slot: number;
  added: string[];
  removed: string[];
}

export interface PutResult {
  /** The change's stream id: the consistency token ('' when stale). */
  token: string;
  templateIds: string[];
  removed: string[];
  /** A newer replace or remove of the subject was already applied: nothing changed. */
  stale: boolean;
  /** An import skipped the subject because it was removed: nothing changed. */
  removedBefore: boolean;
}

export interface StreamInfo {
  /** The newest id ever added ('0-0' for a new stream). */
  lastId: string;
  /** The oldest entry still in the stream ('0-0' when empty). */
  firstId: string;
  length: number;
  /** Entries ever added; more than `length` means some were trimmed. */
  entriesAdded: number;
  /** The largest id deleted by XDEL ('0-0' if none; Redis 7.0 does not count trimming here). */
  maxDeletedId: string;
  /** With streamInfo(at): whether the entry `at` is in the stream. */
  hasAt?: boolean;
  /** Set by each restore ('' before any): a reader that loaded under another one reloads. */
  restoreId: string;
}

/** A write refused by the fence comes back as StoreFencedError (UNAVAILABLE): the caller waits and retries. */
async function fenceable<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('FENCED')) throw new StoreFencedError();
    throw err;
  }
}

const PUT = loadScript('put');
const DEL = loadScript('del');
const META = loadScript('meta');
const RESEAL = loadScript('reseal');

type Scripted = Redis & {
  yocoPut(...args: (string | Buffer | number)[]): Promise<[string, string]>;
  yocoDel(...args: (string | number)[]): Promise<[string, string] | 'stale'>;
  yocoMeta(...args: (string | number)[]): Promise<[string, string]>;
  yocoReseal(key: string, field: string, old: Buffer, next: Buffer): Promise<number>;
};

function parseFields(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]] = fields[i + 1];
  return out;
}

function split(list: string | undefined): string[] {
  return list ? list.split(',').filter((s) => s.length > 0) : [];
}

/**
 * Redis as the store of record. Per slot, a hash of templateId -> record; per
 * subject, the set of its template ids; one change stream appended in the
 * same Lua script (one atomic step) as every write.
 */
export class GalleryStore {
  readonly prefix: string;
  readonly dim: number;
  readonly streamKey: string;
  readonly keys: StoreKeys;
  private readonly maxLen: number;
  private readonly barrierTtl: number;
  private readonly redis: Scripted;
  private readonly sealer: TemplateSealer | undefined;

  constructor(redis: Redis, options: GalleryStoreOptions) {
    if (!Number.isInteger(options.dim) || options.dim < 1) throw new RangeError(`dim must be a positive integer, got ${options.dim}`);
    this.prefix = options.prefix ?? 'yoco:';
    this.dim = options.dim;
    this.maxLen = options.streamMaxLen ?? 1_000_000;
    if (!Number.isInteger(this.maxLen) || this.maxLen < 1) throw new RangeError(`streamMaxLen must be a positive integer, got ${this.maxLen}`);
    this.barrierTtl = options.barrierTtlSeconds ?? 86_400;
    this.keys = new StoreKeys(this.prefix);
    this.sealer = options.sealer;
    this.streamKey = this.keys.changes;
    if (!('yocoPut' in redis)) {
      redis.defineCommand('yocoPut', { numberOfKeys: 6, lua: PUT });
      redis.defineCommand('yocoDel', { numberOfKeys: 7, lua: DEL });
      redis.defineCommand('yocoMeta', { numberOfKeys: 1, lua: META });
      redis.defineCommand('yocoReseal', { numberOfKeys: 1, lua: RESEAL });
    }
    this.redis = redis as Scripted;
  }

  slotKey(slot: number): string {
    return this.keys.slot(slot);
  }

  subjectKey(subjectId: string): string {
    return this.keys.subject(subjectId);
  }

  /** Holds only a sequence number; expires (see barrierTtlSeconds). */
  barrierKey(subjectId: string): string {
    return this.keys.barrier(subjectId);
  }

  /** Marks a removed subject; imports skip it. Holds the removal's sequence only. */
  tombstoneKey(subjectId: string): string {
    return this.keys.tombstone(subjectId);
  }

  get metaKey(): string {
    return this.keys.meta;
  }

  /**
   * Re-seals, one slot at a time, every record not sealed under the sealer's
   * current key (plain ones included). A record is replaced only if it is
   * still the one read (a compare-and-set in Lua), so a concurrent write or
   * removal wins. Returns how many were re-sealed.
   */
  async reseal(onSlot?: (slot: number) => void): Promise<number> {
    const sealer = this.sealer;
    if (!sealer) return 0;
    let n = 0;
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      const key = this.keys.slot(slot);
      let cursor = '0';
      do {
        const [next, flat] = await this.redis.hscanBuffer(key, cursor, 'COUNT', 256);
        cursor = String(next);
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const id = flat[i].toString('utf8');
          const old = flat[i + 1];
          if (recordKeyId(old) === sealer.current) continue;
          const t = decodeCheckedTemplate(id, old, this.dim, sealer);
          n += await this.redis.yocoReseal(key, id, old, encodeTemplate(t.subjectId, t.vector, sealer, id));
        }
      } while (cursor !== '0');
      onSlot?.(slot);
    }
    return n;
  }

  /**
   * Records this store's dim (and, when given, the cluster's head id) on
   * first use; refuses a Redis that holds another width. Returns the head id
   * on record ('' when none was ever recorded): the cluster's head, the one
   * the coordinator merges answers from.
   */
  async checkMeta(headId = ''): Promise<{ headId: string }> {
    const [dim, head] = await this.redis.yocoMeta(this.metaKey, this.dim, headId);
    const stored = Number(dim);
    if (stored !== this.dim) {
      throw new StoreMismatchError(`Redis at prefix '${this.prefix}' holds ${stored}-wide templates; this process is configured for ${this.dim}`);
    }
    return { headId: head };
  }

  /** The width recorded in Redis (0 for a store never written). */
  async storedDim(): Promise<number> {
    return Number((await this.redis.hget(this.metaKey, 'dim')) ?? 0);
  }

  /** The cluster's head id on record ('' when none). */
  async storedHead(): Promise<string> {
    return (await this.redis.hget(this.metaKey, 'head')) ?? '';
  }

  /**
   * Refuses a Redis older than 7.0: a follower finds lost changes with
   * XINFO's entries-added and max-deleted-entry-id, which older servers lack.
   */
  async checkServer(): Promise<string> {
    const info = await this.redis.info('server');
    const version = /redis_version:([\d.]+)/.exec(info)?.[1] ?? 'unknown';
    const major = Number(version.split('.')[0]);
    if (!(major >= 7)) {
      throw new RedisVersionError(
        `Redis ${version} is older than 7.0: YOCO's shards need XINFO STREAM's entries-added and max-deleted-entry-id to know when they missed changes; upgrade Redis`,
      );
    }
    return version;
  }

  /**
   * Adds templates to a subject (or replaces all of them) and appends the
   * change, atomically. Template ids derive from content, so a retry is a no-op.
   */
  async put(subjectId: string, vectors: Float32Array[], options: PutOptions = {}): Promise<PutResult> {
    assertSubjectId(subjectId);
    if (vectors.length === 0) throw new RangeError('put needs at least one vector');
    const args: (string | Buffer)[] = [];
    const ids: string[] = [];
    // The store's trust boundary: nothing unchecked is written, whoever called.
    for (const [i, v] of vectors.entries()) {
      assertVectors(v, this.dim, `vector ${i}`, 1);
      const id = templateIdOf(subjectId, v);
      if (ids.includes(id)) continue;
      ids.push(id);
      args.push(id, encodeTemplate(subjectId, v, this.sealer, id));
    }
    const slot = slotOf(subjectId);
    const [token, removed] = await fenceable(() =>
      this.redis.yocoPut(
        this.slotKey(slot),
        this.subjectKey(subjectId),
        this.streamKey,
        this.barrierKey(subjectId),
        this.tombstoneKey(subjectId),
        this.keys.fence,
        subjectId,
        slot,
        options.replace ? '1' : '0',
        this.maxLen,
        options.seq ?? 0,
        this.barrierTtl,
        options.import ? 'import' : 'enrol',
        options.fenceToken ?? '',
        ...args,
      ),
    );
    if (token === '' && removed === 'stale') return { token: '', templateIds: ids, removed: [], stale: true, removedBefore: false };
    if (token === '' && removed === 'removed') return { token: '', templateIds: ids, removed: [], stale: false, removedBefore: true };
    return { token, templateIds: ids, removed: split(removed), stale: false, removedBefore: false };
  }

  /**
   * Deletes a subject's templates and appends the change. Throws
   * SubjectNotFoundError when it has none; returns '' when a newer replace or
   * remove was already applied (stale).
   */
  async remove(subjectId: string, options: WriteOptions = {}): Promise<string> {
    const r = await this.removeLogged(subjectId, options);
    if (r.stale) return '';
    if (!r.token) throw new SubjectNotFoundError(subjectId);
    return r.token;
  }

  /**
   * remove(), saying all: the change id ('' when the subject had no
   * templates), and the removal's id in the removal log ('' when stale: a
   * newer replace or remove was already applied, and nothing was logged).
   */
  async removeLogged(subjectId: string, options: WriteOptions = {}): Promise<{ token: string; logId: string; stale: boolean }> {
    assertSubjectId(subjectId);
    const slot = slotOf(subjectId);
    const reply = await fenceable(() =>
      this.redis.yocoDel(
        this.slotKey(slot),
        this.subjectKey(subjectId),
        this.streamKey,
        this.barrierKey(subjectId),
        this.tombstoneKey(subjectId),
        this.keys.fence,
        this.keys.removals,
        subjectId,
        slot,
        this.maxLen,
        options.seq ?? 0,
        this.barrierTtl,
        options.fenceToken ?? '',
      ),
    );
    if (reply === 'stale') return { token: '', logId: '', stale: true };
    return { token: reply[0], logId: reply[1], stale: false };
  }

  async templateIds(subjectId: string): Promise<string[]> {
    assertSubjectId(subjectId);
    return (await this.redis.hkeys(this.subjectKey(subjectId))).sort();
  }

  /**
   * The templates stored under `ids` in a slot; ids no longer there are
   * skipped. A record that cannot be used (corrupt, wrong width) throws
   * TemplateRecordError.
   */
  async fetch(slot: number, ids: string[]): Promise<Template[]> {
    if (ids.length === 0) return [];
    const values = await this.redis.hmgetBuffer(this.slotKey(slot), ...ids);
    const out: Template[] = [];
    values.forEach((v, i) => {
      if (v) out.push(decodeCheckedTemplate(ids[i], v, this.dim, this.sealer));
    });
    return out;
  }

  /**
   * Every template of the given slots, a pipeline of `batch` slots at a time.
   * A record that cannot be used goes to `onBad` and is skipped (throws
   * TemplateRecordError when there is no onBad).
   */
  async *loadSlots(slots: number[], options: { batch?: number; onBad?: (err: TemplateRecordError, slot: number) => void } = {}): AsyncGenerator<Template[]> {
    const batch = options.batch ?? 64;
    for (let i = 0; i < slots.length; i += batch) {
      const part = slots.slice(i, i + batch);
      const pipe = this.redis.pipeline();
      for (const s of part) pipe.hgetallBuffer(this.slotKey(s));
      const results = (await pipe.exec()) ?? [];
      const out: Template[] = [];
      results.forEach(([err, value], j) => {
        if (err) throw err;
        for (const [id, bytes] of Object.entries(value as Record<string, Buffer>)) {
          try {
            out.push(decodeCheckedTemplate(id, bytes, this.dim, this.sealer));
          } catch (e) {
            if (!options.onBad || !(e instanceof TemplateRecordError)) throw e;
            options.onBad(e, part[j]);
          }
        }
      });
      yield out;
    }
  }

  /** The stream's ends and counts; with `at` (a reader's watermark), also whether that entry is still in it. */
  async streamInfo(at?: string): Promise<StreamInfo> {
    // EXISTS and XINFO in one transaction: a stream that does not exist yet is told apart without reading an error message.
    const multi = this.redis.multi().hget(this.metaKey, 'restore').exists(this.streamKey).xinfo('STREAM', this.streamKey);
    const probe = at !== undefined && at !== STREAM_START;
    if (probe) multi.xrange(this.streamKey, at, at);
    const [[restoreErr, restore], [existsErr, exists], [infoErr, reply], atReply] = (await multi.exec()) ?? [[null, null], [null, 0], [null, null]];
    if (restoreErr) throw restoreErr;
    if (existsErr) throw existsErr;
    const restoreId = typeof restore === 'string' ? restore : '';
    if (Number(exists) === 0) return { lastId: STREAM_START, firstId: STREAM_START, length: 0, entriesAdded: 0, maxDeletedId: STREAM_START, restoreId, ...(probe ? { hasAt: false } : {}) };
    if (infoErr) throw infoErr;
    if (atReply?.[0]) throw atReply[0];
    const raw = reply as unknown[];
    const info: Record<string, unknown> = {};
    for (let i = 0; i + 1 < raw.length; i += 2) info[String(raw[i])] = raw[i + 1];
    if (!('entries-added' in info)) {
      throw new RedisVersionError('XINFO STREAM has no entries-added (Redis older than 7.0): a shard cannot tell whether it missed trimmed changes; upgrade Redis');
    }
    return {
      lastId: String(info['last-generated-id'] ?? STREAM_START),
      firstId: Array.isArray(info['first-entry']) ? String(info['first-entry'][0]) : STREAM_START,
      length: Number(info['length'] ?? 0),
      entriesAdded: Number(info['entries-added']),
      maxDeletedId: String(info['max-deleted-entry-id'] ?? STREAM_START),
      restoreId,
      ...(probe ? { hasAt: Array.isArray(atReply?.[1]) && atReply[1].length > 0 } : {}),
    };
  }

  /**
   * Changes after `afterId`, oldest first. With blockMs > 0 waits that long
   * for the first one. Use a dedicated connection when blocking.
   */
  async readChanges(afterId: string, count = 1000, blockMs = 0, client: Redis = this.redis): Promise<Change[]> {
    const reply = blockMs > 0
      ? await client.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', this.streamKey, afterId)
      : await client.xread('COUNT', count, 'STREAMS', this.streamKey, afterId);
    if (!reply) return [];
    const out: Change[] = [];
    for (const [, entries] of reply) {
      for (const [id, fields] of entries) {
        const f = parseFields(fields);
        out.push({
          id,
          op: f.op === 'del' ? 'del' : 'put',
          subjectId: f.subject,
          slot: Number(f.slot),
          added: split(f.add),
          removed: split(f.del),
        });
      }
    }
    return out;
  }

  /** Counts subjects and templates per slot (for status and tests); O(slots) round trips in one pipeline. */
  async countTemplates(slots: number[] = Array.from({ length: SLOT_COUNT }, (_, i) => i)): Promise<number> {
    const pipe = this.redis.pipeline();
    for (const s of slots) pipe.hlen(this.slotKey(s));
    const results = (await pipe.exec()) ?? [];
    return results.reduce((sum, [err, n]) => {
      if (err) throw err;
      return sum + Number(n);
    }, 0);
  }

  /**
   * Why a reader at `watermark`, having seen `seen` of the stream's entries
   * (entries-added when it loaded, plus one per change it read since), has
   * missed changes it can no longer read; undefined when it cannot have:
   * - the stream's newest id, or its count of entries ever added, is behind
   *   the reader's: this is not the stream it followed (a Redis restored from
   *   an older file, a failover that lost the tail);
   * - an entry after the watermark was deleted (XDEL: max-deleted-entry-id);
   * - more entries were added after the watermark than the stream still
   *   holds: trimming (which only ever drops the oldest) took some the reader
   *   had not read. Trimming does not move max-deleted-entry-id (measured on
   *   Redis 7.0.15), and an empty stream says nothing by its first entry; the
   *   counts are exact in both cases.
   * - (with info.hasAt, from streamInfo(watermark)) the reader's last change
   *   is gone from a stream that still holds older ones and none of it was
   *   deleted: the tail it read was lost. This is an asynchronous failover:
   *   the replica that took over never had those changes, and new writes
   *   may already have carried the stream's counts and ends past the
   *   reader's, so nothing else tells.
   */
  static lostChanges(watermark: string, seen: number, info: StreamInfo): string | undefined {
    if (compareStreamIds(info.lastId, watermark) < 0 || info.entriesAdded < seen) {
      return `the stream (newest change ${info.lastId}, ${info.entriesAdded} ever added) is behind this reader (${watermark}, ${seen}): the stream was replaced`;
    }
    if (info.hasAt === false && info.length > 0 && compareStreamIds(info.firstId, watermark) <= 0 && compareStreamIds(info.maxDeletedId, watermark) < 0) {
      return `change ${watermark}, the last this reader applied, is not in the stream (which holds ${info.firstId} to ${info.lastId}): the stream lost its tail (a failover to a replica that never had it?)`;
    }
    if (compareStreamIds(info.maxDeletedId, watermark) > 0) return `change ${info.maxDeletedId}, after ${watermark}, was deleted`;
    const unread = info.entriesAdded - seen;
    if (unread > info.length) return `${unread - info.length} of the ${unread} changes after ${watermark} were trimmed before this reader read them`;
    return undefined;
  }
}
