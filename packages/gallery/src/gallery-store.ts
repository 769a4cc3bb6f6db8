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
  /** The change's stream id: the consistency token. */
  token: string;
  templateIds: string[];
  removed: string[];
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

// KEYS: slot hash, subject set, stream. ARGV: subject, slot, replace, maxlen, (templateId, record)*.
const PUT = `
local removed = {}
if ARGV[3] == '1' then
  for _, t in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    redis.call('HDEL', KEYS[1], t)
    table.insert(removed, t)
  end
  redis.call('DEL', KEYS[2])
end
local added = {}
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('SADD', KEYS[2], ARGV[i])
  table.insert(added, ARGV[i])
end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'put', 'subject', ARGV[1], 'slot', ARGV[2],
  'add', table.concat(added, ','), 'del', table.concat(removed, ','))
return {id, table.concat(removed, ',')}
`;

// KEYS: slot hash, subject set, stream. ARGV: subject, slot, maxlen.
const DEL = `
local ids = redis.call('SMEMBERS', KEYS[2])
if #ids == 0 then return false end
for _, t in ipairs(ids) do redis.call('HDEL', KEYS[1], t) end
redis.call('DEL', KEYS[2])
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
  private readonly redis: Scripted;

  constructor(redis: Redis, options: GalleryStoreOptions) {
    if (!Number.isInteger(options.dim) || options.dim < 1) throw new RangeError(`dim must be a positive integer, got ${options.dim}`);
    this.prefix = options.prefix ?? 'yoco:';
    this.dim = options.dim;
    this.maxLen = options.streamMaxLen ?? 1_000_000;
    if (!Number.isInteger(this.maxLen) || this.maxLen < 1) throw new RangeError(`streamMaxLen must be a positive integer, got ${this.maxLen}`);
    this.streamKey = `${this.prefix}changes`;
    if (!('yocoPut' in redis)) {
      redis.defineCommand('yocoPut', { numberOfKeys: 3, lua: PUT });
      redis.defineCommand('yocoDel', { numberOfKeys: 3, lua: DEL });
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

  /** Records this store's dim on first use; refuses a Redis that holds another width. */
  async checkMeta(): Promise<void> {
    const stored = Number(await this.redis.yocoMeta(`${this.prefix}meta`, this.dim));
    if (stored !== this.dim) {
      throw new StoreMismatchError(`Redis at prefix '${this.prefix}' holds ${stored}-wide templates; this process is configured for ${this.dim}`);
    }
  }

  /**
   * Adds templates to a subject (or replaces all of them) and appends the
   * change, atomically. Template ids derive from content, so a retry is a no-op.
   */
  async put(subjectId: string, vectors: Float32Array[], options: { replace?: boolean } = {}): Promise<PutResult> {
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
      subjectId,
      slot,
      options.replace ? '1' : '0',
      this.maxLen,
      ...args,
    );
    return { token, templateIds: ids, removed: split(removed) };
  }

  /** Deletes a subject's templates and appends the change; throws SubjectNotFoundError if it has none. */
  async remove(subjectId: string): Promise<string> {
    assertSubjectId(subjectId);
    const slot = slotOf(subjectId);
    const token = await this.redis.yocoDel(this.slotKey(slot), this.subjectKey(subjectId), this.streamKey, subjectId, slot, this.maxLen);
    if (token === null) throw new SubjectNotFoundError(subjectId);
    return token;
  }

  async templateIds(subjectId: string): Promise<string[]> {
    assertSubjectId(subjectId);
    return (await this.redis.smembers(this.subjectKey(subjectId))).sort();
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
