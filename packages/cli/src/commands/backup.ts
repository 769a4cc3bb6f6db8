import { readEnv } from '@yoco/common';
import { backupStore, connectRedis, restoreStore, type BackupHeader } from '@yoco/gallery';
import { REDIS_ENV, redisTarget } from '@yoco/service';
import { localCluster } from '../cluster-file.js';

export interface StoreToolOptions {
  /** Redis: --redis, else REDIS_URL / REDIS_SENTINELS, else the Redis `npm start` runs here. */
  redis?: string;
  json?: boolean;
}

/**
 * Backup and restore talk to Redis itself, not the Matcher: they move the
 * whole store, and a restore is what runs when the cluster around it is gone.
 */
function openStore(options: StoreToolOptions) {
  const config = readEnv(REDIS_ENV, process.env);
  const fromEnv = Boolean(process.env.REDIS_URL || process.env.REDIS_SENTINELS);
  const target = options.redis || (fromEnv ? redisTarget(config) : localCluster()?.redis);
  if (!target) throw new Error('no Redis to use: give --redis URL, or set REDIS_URL (or REDIS_SENTINELS), or run it beside `npm start`');
  return { redis: connectRedis(target, 'tool'), prefix: config.prefix, target };
}

function describe(h: BackupHeader): string {
  return `${h.subjects} subjects, ${h.templates} templates (D=${h.dim}), cut at ${new Date(h.createdAtMs).toISOString()} (change ${h.streamLastId})`;
}

/** `yoco backup FILE`: a point-in-time copy of the store (gallery, removal log, topology, audit) in one checked file. */
export async function backup(file: string, options: StoreToolOptions): Promise<void> {
  const { redis, prefix } = openStore(options);
  try {
    const r = await backupStore(redis, { prefix, file });
    if (options.json) console.log(JSON.stringify({ file, bytes: r.bytes, ms: r.ms, fenced_ms: r.fencedMs, header: r.header }));
    else console.log(`backed up ${describe(r.header)} to ${file}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${(r.ms / 1000).toFixed(1)} s (enrolments waited ${(r.fencedMs / 1000).toFixed(1)} s)`);
  } finally {
    redis.disconnect();
  }
}

/**
 * `yoco restore FILE [--removal-log DIR ...]`: puts the backup back (checked
 * whole first; swapped in at once), then re-applies every removal made after
 * it, from the store's own removal log and from the given files.
 */
export async function restore(file: string, removalLogs: string[], options: StoreToolOptions): Promise<void> {
  const { redis, prefix } = openStore(options);
  try {
    const r = await restoreStore(redis, { prefix, file, removalLogs });
    if (options.json) {
      console.log(JSON.stringify({ file, restored: r.restored, kept: r.keptConfig, reapplied: r.reapplied.length, job_seq: r.jobSeq, ms: r.ms, fenced_ms: r.fencedMs, header: r.header }));
      return;
    }
    console.log(`restored ${describe(r.header)} from ${file} in ${(r.ms / 1000).toFixed(1)} s`);
    console.log(`re-applied ${r.reapplied.length} removal(s) made after the backup${r.reapplied.length ? `: ${r.reapplied.slice(0, 10).map((x) => x.subjectId).join(', ')}${r.reapplied.length > 10 ? ', ...' : ''}` : ''}`);
    if (r.keptConfig.length) console.log(`kept this store's own ${r.keptConfig.join(', ')}`);
    console.log('enrolments made after the backup are not in it: enrol them again (the shards reload on their own)');
  } finally {
    redis.disconnect();
  }
}
