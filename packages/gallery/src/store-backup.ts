import { existsSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { backupRecords, BackupWriter, verifyBackup, type BackupHeader, type BackupKeyKind } from './backup-file.js';
import { BackupFileError, StoreMismatchError } from './errors/index.js';
import { GalleryStore } from './gallery-store.js';
import { StoreKeys } from './keys.js';
import { mergeRemovals, readRemovalFiles, readRemovalStream, type RemovalRecord } from './removal-log.js';
import { StoreFence } from './store-fence.js';
import { compareStreamIds, STREAM_START } from './stream-id.js';

/**
 * Which keys a backup holds, by their name under the prefix. Data is the
 * gallery (templates, the subject index, ordering barriers, tombstones, the
 * change stream, the removal log): a restore replaces it wholesale. Config
 * and evidence (the store's meta, the topology, rolled-out heads, the audit
 * trail) describe the running cluster or what happened: a restore keeps the
 * target's own and brings the backup's only where the target has none. The
 * queue (BullMQ's keys, the job index) and the fence are not backed up: a
 * restore leaves the target's queue running.
 */
export function backupKind(name: string): BackupKeyKind | undefined {
  if (name === 'changes' || name === 'removals' || /^slot:\d+$/.test(name) || /^(subject|barrier|removed):/.test(name)) return 'data';
  if (name === 'meta' || name === 'topology' || name === 'audit' || name === 'audit:decisions' || name.startsWith('head:')) return 'config';
  return undefined;
}

/** Every key under the prefix, by name (the part after the prefix). */
async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 2000);
    cursor = next;
    for (const k of keys) out.push(k.slice(prefix.length));
  } while (cursor !== '0');
  return out;
}

export interface BackupOptions {
  prefix: string;
  /** The file to write; it must not exist (written beside it, then renamed into place). */
  file: string;
  /** How long the fence lives without renewal (ms); default 30000. */
  fenceTtlMs?: number;
}

export interface BackupResult {
  header: BackupHeader;
  /** How long gallery writes waited on the fence (ms). */
  fencedMs: number;
  ms: number;
  bytes: number;
}

/** Keys DUMPed per round trip. */
const DUMP_BATCH = 64;

/** DUMPs these keys (names under the prefix) into the file; returns the names that were there and those that were not. */
async function dumpKeys(redis: Redis, prefix: string, names: string[], writer: BackupWriter): Promise<{ found: string[]; gone: string[] }> {
  const found: string[] = [];
  const gone: string[] = [];
  for (let i = 0; i < names.length; i += DUMP_BATCH) {
    const part = names.slice(i, i + DUMP_BATCH);
    const pipe = redis.pipeline();
    for (const n of part) pipe.dumpBuffer(prefix + n).pttl(prefix + n);
    const replies = (await pipe.exec()) ?? [];
    for (let j = 0; j < part.length; j++) {
      const [dumpErr, dump] = replies[2 * j];
      const [, pttl] = replies[2 * j + 1];
      if (dumpErr) throw dumpErr;
      if (dump === null) {
        gone.push(part[j]);
        continue;
      }
      await writer.add({ kind: backupKind(part[j])!, name: part[j], pttl: Number(pttl) > 0 ? Number(pttl) : -1, dump: dump as Buffer });
      found.push(part[j]);
    }
  }
  return { found, gone };
}

/** Changes and removals per XRANGE while finding what moved during the first pass. */
const DELTA_PAGE = 5000;

/**
 * The data keys the writes after `changesAfter` and `removalsAfter` touched
 * (every gallery write appends to one of the two streams, in the same script
 * that writes the keys), or undefined when the change stream was trimmed past
 * the first of them, so the delta cannot be known.
 */
async function touchedSince(redis: Redis, keys: StoreKeys, changesAfter: string, changesSeen: number, removalsAfter: string): Promise<Set<string> | undefined> {
  const touched = new Set<string>();
  const subject = (id: string, slot: string) => {
    touched.add(`subject:${id}`);
    touched.add(`barrier:${id}`);
    touched.add(`removed:${id}`);
    touched.add(`slot:${slot}`);
  };
  let read = 0;
  for (const [key, after] of [[keys.changes, changesAfter], [keys.removals, removalsAfter]] as const) {
    let from = after === STREAM_START ? '-' : `(${after}`;
    for (;;) {
      const page = await redis.xrange(key, from, '+', 'COUNT', DELTA_PAGE);
      for (const [, fields] of page) {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
        subject(f.subject, f.slot);
      }
      if (key === keys.changes) read += page.length;
      if (page.length < DELTA_PAGE) break;
      from = `(${page[page.length - 1][0]}`;
    }
  }
  const info = await new GalleryStore(redis, { prefix: keys.prefix, dim: 1 }).streamInfo();
  return info.entriesAdded - changesSeen === read ? touched : undefined;
}

/**
 * A point-in-time backup of one prefix, taken like a live migration: a first
 * pass DUMPs every data key while writes go on; then the fence is taken
 * (every gallery write after it waits; none is refused or lost, the enroller
 * holds its jobs), the cut is recorded (Redis' clock, the stream's and the
 * removal log's last ids, the job counter), and only the keys written since
 * the first pass began (the two streams say which) are DUMPed again, with
 * the streams and the config keys. Later records of a key replace earlier
 * ones. So writes wait for the delta, not for the whole gallery. If the
 * change stream was trimmed past the delta, everything is DUMPed again under
 * the fence. A failure leaves no file.
 */
export async function backupStore(redis: Redis, options: BackupOptions): Promise<BackupResult> {
  const started = Date.now();
  const keys = new StoreKeys(options.prefix);
  if (existsSync(options.file)) throw new Error(`${options.file} exists: a backup never overwrites another`);
  const partial = `${options.file}.partial`;
  const writer = await BackupWriter.create(partial);
  const store = new GalleryStore(redis, { prefix: options.prefix, dim: 1 });
  let fence: StoreFence | undefined;
  let fencedMs = 0;
  try {
    const before = await store.streamInfo();
    const removalsBefore = (await redis.xrevrange(keys.removals, '+', '-', 'COUNT', 1))[0]?.[0] ?? STREAM_START;
    const data = (await keysUnder(redis, options.prefix)).filter((n) => backupKind(n) === 'data' && n !== 'changes' && n !== 'removals').sort();
    const first = await dumpKeys(redis, options.prefix, data, writer);
    const held = new Set(first.found);

    fence = await StoreFence.acquire(redis, keys.fence, options.fenceTtlMs);
    const fencedAt = Date.now();
    const [time, info, lastRemoval, jobSeq, meta, server] = await Promise.all([
      redis.time(),
      store.streamInfo(),
      redis.xrevrange(keys.removals, '+', '-', 'COUNT', 1),
      redis.get(keys.jobCounter),
      redis.hgetall(keys.meta),
      redis.info('server'),
    ]);
    const touched = await touchedSince(redis, keys, before.lastId, before.entriesAdded, removalsBefore);
    const all = await keysUnder(redis, options.prefix);
    const present = new Set(all);
    const again = touched
      ? [...touched].filter((n) => held.has(n) || present.has(n))
      : [...new Set([...held, ...all.filter((n) => backupKind(n) === 'data' && n !== 'changes' && n !== 'removals')])];
    const config = all.filter((n) => backupKind(n) === 'config' || n === 'changes' || n === 'removals');
    const second = await dumpKeys(redis, options.prefix, [...again, ...config].sort(), writer);
    for (const n of second.found) held.add(n);
    // A key written in the first pass and gone by the cut (a subject removed meanwhile) is marked gone.
    for (const n of second.gone) {
      if (held.delete(n)) await writer.add({ kind: 'gone', name: n, pttl: -1, dump: Buffer.alloc(0) });
    }
    const templates = await store.countTemplates();
    if (!(await fence.held())) throw new Error('the fence lapsed while the backup ran (Redis unreachable for longer than its ttl): writes may have moved under it; nothing was kept');
    await fence.release();
    fencedMs = Date.now() - fencedAt;
    const header: BackupHeader = {
      format: 1,
      prefix: options.prefix,
      createdAtMs: Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000),
      redisVersion: /redis_version:(\S+)/.exec(server)?.[1] ?? '',
      streamLastId: info.lastId,
      removalsLastId: lastRemoval[0]?.[0] ?? STREAM_START,
      jobSeq: Number(jobSeq ?? 0),
      dim: Number(meta.dim ?? 0),
      headId: meta.head ?? '',
      keys: held.size,
      subjects: [...held].filter((n) => n.startsWith('subject:')).length,
      templates,
      redumped: touched ? again.length : -1,
    };
    await writer.commit(header);
    await rename(partial, options.file);
    const { size } = await stat(options.file);
    return { header, fencedMs, ms: Date.now() - started, bytes: size };
  } catch (err) {
    await writer.abort();
    await rm(partial, { force: true });
    throw err;
  } finally {
    await fence?.release().catch(() => undefined);
  }
}

export interface RestoreOptions {
  prefix: string;
  file: string;
  /** Removal log files, or directories of them (REMOVAL_LOG_DIR): their removals after the backup are re-applied too. */
  removalLogs?: string[];
  fenceTtlMs?: number;
}

export interface RestoreResult {
  header: BackupHeader;
  /** Keys written from the backup, and config keys of the target kept instead of the backup's. */
  restored: number;
  keptConfig: string[];
  /** Removals made after the backup, re-applied (from the target's removal log and the files). */
  reapplied: RemovalRecord[];
  /** The job id counter after the restore (never lower than it was). */
  jobSeq: number;
  fencedMs: number;
  ms: number;
}

/** RESTOREs per round trip while staging. */
const RESTORE_BATCH = 64;

/**
 * Puts a backup back: the file is checked whole first, then every key is
 * RESTOREd beside the live data (under `restore:<token>:`), and only then,
 * under the fence, swapped in by one transaction (the old data keys go, the
 * staged ones are renamed into place, the meta gets a new restore id, which
 * makes every shard reload). A failure before the swap changes nothing.
 * Then every removal the backup does not hold is re-applied at its own
 * sequence (what was enrolled after it stays), and the job counter is kept
 * above every sequence used, so no job id is handed out twice.
 */
export async function restoreStore(redis: Redis, options: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const header = await verifyBackup(options.file);
  const keys = new StoreKeys(options.prefix);
  const targetMeta = await redis.hgetall(keys.meta);
  if (targetMeta.dim && header.dim && Number(targetMeta.dim) !== header.dim) {
    throw new StoreMismatchError(`the backup holds ${header.dim}-wide templates but this store is ${targetMeta.dim}-wide: restore it into an empty prefix, or where the cluster runs that width`);
  }
  const fromFiles = options.removalLogs?.length ? await readRemovalFiles(options.removalLogs) : [];
  // One restore at a time (its own lock, not the write fence: staging does not stop writes). Staged keys
  // a restore that died left behind go first.
  const lock = await StoreFence.acquire(redis, `${options.prefix}restore-lock`, options.fenceTtlMs);
  const stagePrefix = `${options.prefix}restore:`;
  const stage = (name: string) => `${stagePrefix}${name}`;
  try {
    await unlinkAll(redis, (await keysUnder(redis, stagePrefix)).map(stage));
    const staged = new Map<string, number>();
    const keptConfig: string[] = [];
    let batch: { name: string; pttl: number; dump: Buffer }[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const pipe = redis.pipeline();
      // Staged without a TTL, so nothing staged can be gone at the swap; the TTL is put back there.
      for (const r of batch) pipe.restore(stage(r.name), 0, r.dump, 'REPLACE');
      const replies = (await pipe.exec()) ?? [];
      replies.forEach(([err], i) => {
        if (err) throw new BackupFileError(`RESTORE of ${batch[i].name} failed: ${err.message} (a backup from a newer Redis than this one? it was taken on ${header.redisVersion}); nothing was changed`);
      });
      for (const r of batch) staged.set(r.name, r.pttl);
      batch = [];
    };
    for await (const rec of backupRecords(options.file)) {
      if (rec.kind === 'gone') {
        // A key the first pass held that was gone at the cut.
        await flush();
        await redis.unlink(stage(rec.name));
        staged.delete(rec.name);
        continue;
      }
      if (rec.kind === 'config' && rec.name !== 'meta' && (await redis.exists(options.prefix + rec.name))) {
        if (!keptConfig.includes(rec.name)) keptConfig.push(rec.name);
        continue;
      }
      batch.push(rec);
      if (batch.length >= RESTORE_BATCH) await flush();
    }
    await flush();
    if (staged.size + keptConfig.length !== header.keys) throw new BackupFileError(`the backup lists ${header.keys} keys but ${staged.size + keptConfig.length} were read`);

    const fence = await StoreFence.acquire(redis, keys.fence, options.fenceTtlMs);
    const fencedAt = Date.now();
    try {
      // Under the fence no gallery write moves: the target's removals are read now, then replaced.
      const live = await readRemovalStream(redis, keys.removals, header.removalsLastId).catch(() => [] as RemovalRecord[]);
      const afterBackup = (r: RemovalRecord) => compareStreamIds(r.id, header.removalsLastId) > 0;
      const reapply = mergeRemovals(live.filter(afterBackup), fromFiles.filter(afterBackup));
      const current = (await keysUnder(redis, options.prefix)).filter((n) => backupKind(n) === 'data');
      const keepMeta = Boolean(targetMeta.dim) && staged.has('meta');
      // One transaction: every staged key exists (staged without TTL, under the restore lock), so no
      // command in it can fail, and Redis runs it whole or not at all.
      const multi = redis.multi();
      for (const n of current) multi.unlink(options.prefix + n);
      for (const [n, pttl] of staged) {
        if (n === 'meta' && keepMeta) {
          multi.unlink(stage(n));
          continue;
        }
        multi.rename(stage(n), options.prefix + n);
        if (pttl > 0) multi.pexpire(options.prefix + n, Math.max(1, Math.round(pttl)));
      }
      if (keepMeta) keptConfig.push('meta');
      multi.hset(keys.meta, 'restore', fence.token);
      const replies = (await multi.exec()) ?? [];
      const failed = replies.find(([err]) => err);
      if (failed) throw failed[0] as Error;
      const store = new GalleryStore(redis, { prefix: options.prefix, dim: 1 });
      for (const r of reapply) await store.removeLogged(r.subjectId, { seq: r.seq, fenceToken: fence.token });
      // Job ids are write sequences: never again one already handed out, nor one below a removal re-applied.
      // A target that lost its counter too (every replica gone) cannot say which ids it handed out after the
      // backup: the counter then starts at the clock in ms, above any count of jobs a store has run.
      const had = await redis.get(keys.jobCounter);
      const counter = Math.max(Number(had ?? 0), header.jobSeq, ...reapply.map((r) => r.seq), had === null && header.jobSeq > 0 ? Date.now() : 0);
      await redis.set(keys.jobCounter, counter);
      if (!(await fence.held())) throw new Error('the fence lapsed during the swap (Redis unreachable for longer than its ttl)');
      const fencedMs = Date.now() - fencedAt;
      return { header, restored: staged.size - (keepMeta ? 1 : 0), keptConfig, reapplied: reapply, jobSeq: counter, fencedMs, ms: Date.now() - started };
    } finally {
      await fence.release().catch(() => undefined);
    }
  } finally {
    await unlinkAll(redis, (await keysUnder(redis, stagePrefix).catch(() => [] as string[])).map(stage)).catch(() => undefined);
    await lock.release().catch(() => undefined);
  }
}

async function unlinkAll(redis: Redis, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 500) await redis.unlink(...keys.slice(i, i + 500));
}
