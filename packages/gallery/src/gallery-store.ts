import { assertVectors } from '@yoco/common';
import type { Redis } from 'ioredis';
import { StoreMismatchError, SubjectNotFoundError } from './errors/index.js';
import { assertSubjectId, SLOT_COUNT, slotOf } from './slots.js';
import { decodeTemplate, encodeTemplate, templateIdOf, type Template } from './template-record.js';
import { compareStreamIds, STREAM_START } from './stream-id.js';

export interface GalleryStoreOptions {
  /** Key prefix; every key the store touches starts with it (default 'yoco:'). */
  prefix?: string;
  /** The vector width every template must have. */
  dim: number;
  /** Approximate cap on the change stream's length (XADD MAXLEN ~); default 1,000,000. */
  streamMaxLen?: number;
  /** How long a subject's ordering barrier outlives its last replace/remove (s); default 86400. */
  barrierTtlSeconds?: number;
}

export interface WriteOptions {
  /** The write's place in enqueue order; 0 (default) = unordered, always applies. */
  seq?: number;
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
}

export interface StreamInfo {
  /** The newest id ever added ('0-0' for a new stream). */
  lastId: string;
  /** The oldest entry still in the stream ('0-0' when empty). */
  firstId: string;
  length: number;
  /** Entries ever added; more than `length` means some were trimmed. */
  entriesAdded: number;
}

// Writes may carry a sequence number (the enrolment job's, in enqueue order) so
// that retried or reordered jobs still end as if applied in order: a subject's
// barrier is the sequence of its last applied replace or remove; anything at or
// below it is stale and skipped, and a replace or remove only deletes templates
// older than itself. Sequence 0 means unordered (always applies).
//
// KEYS: slot hash, subject hash (templateId -> seq), stream, barrier.
// ARGV: subject, slot, replace, maxlen, seq, barrierTtlSeconds, (templateId, record)*.
// Returns {token, removed ids joined by ','} or {'', 'stale'}.
const PUT = `
local seq = tonumber(ARGV[5])
if seq > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= seq then return {'', 'stale'} end
local removed = {}
if ARGV[3] == '1' then
  local old = redis.call('HGETALL', KEYS[2])
  for i = 1, #old, 2 do
    if seq == 0 or tonumber(old[i + 1]) < seq then
      redis.call('HDEL', KEYS[1], old[i])
      redis.call('HDEL', KEYS[2], old[i])
      table.insert(removed, old[i])
    end
  end
  if seq > 0 then redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[6]) end
end
local added = {}
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  local prev = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '-1')
  if seq > prev then redis.call('HSET', KEYS[2], ARGV[i], ARGV[5]) end
  table.insert(added, ARGV[i])
end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'put', 'subject', ARGV[1], 'slot', ARGV[2],
  'add', table.concat(added, ','), 'del', table.concat(removed, ','))
return {id, table.concat(removed, ',')}
`;

// KEYS: slot hash, subject hash, stream, barrier. ARGV: subject, slot, maxlen, seq, barrierTtlSeconds.
// Returns the change id, 'stale', or false when the subject has no templates.
const DEL = `
local seq = tonumber(ARGV[4])
if seq > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= seq then return 'stale' end
local old = redis.call('HGETALL', KEYS[2])
local ids = {}
for i = 1, #old, 2 do
  if seq == 0 or tonumber(old[i + 1]) < seq then
    redis.call('HDEL', KEYS[1], old[i])
    redis.call('HDEL', KEYS[2], old[i])
    table.insert(ids, old[i])
  end
end
if seq > 0 then redis.call('SET', KEYS[4], ARGV[4], 'EX', ARGV[5]) end
if #ids == 0 then return false end
return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'del', 'subject', ARGV[1], 'slot', ARGV[2],
  'add', '', 'del', table.concat(ids, ','))
`;

// KEYS: meta. ARGV: dim. Returns the stored dim (setting it when absent).
const META = `
redis.call('HSETNX', KEYS[1], 'dim', ARGV[1])
return redis.call('HGET', KEYS[1], 'dim')
`;

type Scripted = Redis & {
  yocoPut(...args: (string | Buffer | number)[]): Promise<[string, string]>;
  yocoDel(...args: (string | number)[]): Promise<string | null>;
  yocoMeta(...args: (string | number)[]): Promise<string>;
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
  private readonly maxLen: number;
  private readonly barrierTtl: number;
  private readonly redis: Scripted;

  constructor(redis: Redis, options: GalleryStoreOptions) {
    if (!Number.isInteger(options.dim) || options.dim < 1) throw new RangeError(`dim must be a positive integer, got ${options.dim}`);
    this.prefix = options.prefix ?? 'yoco:';
    this.dim = options.dim;
    this.maxLen = options.streamMaxLen ?? 1_000_000;
    if (!Number.isInteger(this.maxLen) || this.maxLen < 1) throw new RangeError(`streamMaxLen must be a positive integer, got ${this.maxLen}`);
    this.barrierTtl = options.barrierTtlSeconds ?? 86_400;
    this.streamKey = `${this.prefix}changes`;
    if (!('yocoPut' in redis)) {
      redis.defineCommand('yocoPut', { numberOfKeys: 4, lua: PUT });
      redis.defineCommand('yocoDel', { numberOfKeys: 4, lua: DEL });
      redis.defineCommand('yocoMeta', { numberOfKeys: 1, lua: META });
    }
    this.redis = redis as Scripted;
  }

  slotKey(slot: number): string {
    return `${this.prefix}slot:${slot}`;
  }

  subjectKey(subjectId: string): string {
    return `${this.prefix}subject:${subjectId}`;
  }

  /** Holds only a sequence number; expires (see barrierTtlSeconds). */
  barrierKey(subjectId: string): string {
    return `${this.prefix}barrier:${subjectId}`;
  }

  /** Records this store's dim on first use; refuses a Redis that holds another width. */
  async checkMeta(): Promise<void> {
    const stored = Number(await this.redis.yocoMeta(`${this.prefix}meta`, this.dim));
    if (stored !== this.dim) {
      throw new StoreMismatchError(`Redis at prefix '${this.prefix}' holds ${stored}-wide templates; this process is configured for ${this.dim}`);
    }
  }

  /** The width recorded in Redis (0 for a store never written). */
  async storedDim(): Promise<number> {
    return Number((await this.redis.hget(`${this.prefix}meta`, 'dim')) ?? 0);
  }

  /**
   * Adds templates to a subject (or replaces all of them) and appends the
   * change, atomically. Template ids derive from content, so a retry is a no-op.
   */
  async put(subjectId: string, vectors: Float32Array[], options: { replace?: boolean } & WriteOptions = {}): Promise<PutResult> {
    assertSubjectId(subjectId);
    if (vectors.length === 0) throw new RangeError('put needs at least one vector');
    const args: (string | Buffer)[] = [];
    const ids: string[] = [];
    for (const v of vectors) {
      assertVectors(v, this.dim, 'template', 1);
      const id = templateIdOf(subjectId, v);
      if (ids.includes(id)) continue;
      ids.push(id);
      args.push(id, encodeTemplate(subjectId, v));
    }
    const slot = slotOf(subjectId);
    const [token, removed] = await this.redis.yocoPut(
      this.slotKey(slot),
      this.subjectKey(subjectId),
      this.streamKey,
      this.barrierKey(subjectId),
      subjectId,
      slot,
      options.replace ? '1' : '0',
      this.maxLen,
      options.seq ?? 0,
      this.barrierTtl,
      ...args,
    );
    if (removed === 'stale') return { token: '', templateIds: ids, removed: [], stale: true };
    return { token, templateIds: ids, removed: split(removed), stale: false };
  }

  /**
   * Deletes a subject's templates and appends the change. Throws
   * SubjectNotFoundError when it has none; returns '' when a newer replace or
   * remove was already applied (stale).
   */
  async remove(subjectId: string, options: WriteOptions = {}): Promise<string> {
    assertSubjectId(subjectId);
    const slot = slotOf(subjectId);
    const token = await this.redis.yocoDel(
      this.slotKey(slot),
      this.subjectKey(subjectId),
      this.streamKey,
      this.barrierKey(subjectId),
      subjectId,
      slot,
      this.maxLen,
      options.seq ?? 0,
      this.barrierTtl,
    );
    if (token === null) throw new SubjectNotFoundError(subjectId);
    return token === 'stale' ? '' : token;
  }

  async templateIds(subjectId: string): Promise<string[]> {
    assertSubjectId(subjectId);
    return (await this.redis.hkeys(this.subjectKey(subjectId))).sort();
  }

  /** The templates stored under `ids` in a slot; ids no longer there are skipped. */
  async fetch(slot: number, ids: string[]): Promise<Template[]> {
    if (ids.length === 0) return [];
    const values = await this.redis.hmgetBuffer(this.slotKey(slot), ...ids);
    const out: Template[] = [];
    values.forEach((v, i) => {
      if (v) out.push(decodeTemplate(ids[i], v));
    });
    return out;
  }

  /** Every template of the given slots, a pipeline of `batch` slots at a time. */
  async *loadSlots(slots: number[], batch = 64): AsyncGenerator<Template[]> {
    for (let i = 0; i < slots.length; i += batch) {
      const part = slots.slice(i, i + batch);
      const pipe = this.redis.pipeline();
      for (const s of part) pipe.hgetallBuffer(this.slotKey(s));
      const results = (await pipe.exec()) ?? [];
      const out: Template[] = [];
      for (const [err, value] of results) {
        if (err) throw err;
        for (const [id, bytes] of Object.entries(value as Record<string, Buffer>)) out.push(decodeTemplate(id, bytes));
      }
      yield out;
    }
  }

  async streamInfo(): Promise<StreamInfo> {
    try {
      const raw = (await this.redis.xinfo('STREAM', this.streamKey)) as unknown[];
      const info: Record<string, unknown> = {};
      for (let i = 0; i + 1 < raw.length; i += 2) info[String(raw[i])] = raw[i + 1];
      return {
        lastId: String(info['last-generated-id'] ?? STREAM_START),
        firstId: Array.isArray(info['first-entry']) ? String(info['first-entry'][0]) : STREAM_START,
        length: Number(info['length'] ?? 0),
        entriesAdded: Number(info['entries-added'] ?? info['length'] ?? 0),
      };
    } catch (err) {
      if (/no such key/i.test((err as Error).message)) return { lastId: STREAM_START, firstId: STREAM_START, length: 0, entriesAdded: 0 };
      throw err;
    }
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
   * True when a reader at `watermark` may have missed trimmed changes: the
   * stream was trimmed and its oldest entry is past the watermark. Redis does
   * not keep the trimmed ids, so a reader exactly one entry behind also
   * reloads: safe, and rare with a long stream.
   */
  static lostChanges(watermark: string, info: StreamInfo): boolean {
    return info.entriesAdded > info.length && info.length > 0 && compareStreamIds(watermark, info.firstId) < 0;
  }
}
