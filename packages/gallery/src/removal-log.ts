import { open, readdir, readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { compareStreamIds, isStreamId } from './stream-id.js';

/** One applied removal: a restore re-applies it at its sequence, so what was enrolled after it stays. */
export interface RemovalRecord {
  /** Its entry in the store's removal log (a stream id): what says whether it came after a backup. */
  id: string;
  subjectId: string;
  /** The removal job's sequence (0: unordered, removes every template). */
  seq: number;
  /** When it was applied (ms since the epoch). */
  atMs: number;
}

/** The removal log as the store keeps it (the `removals` stream), oldest first, from after `afterId`. */
export async function readRemovalStream(redis: Redis, key: string, afterId = '-'): Promise<RemovalRecord[]> {
  const out: RemovalRecord[] = [];
  let from = afterId === '-' ? '-' : `(${afterId}`;
  for (;;) {
    const page = await redis.xrange(key, from, '+', 'COUNT', 5000);
    for (const [id, fields] of page) {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
      out.push({ id, subjectId: f.subject, seq: Number(f.seq ?? 0), atMs: Number(id.split('-')[0]) });
    }
    if (page.length < 5000) return out;
    from = `(${page[page.length - 1][0]}`;
  }
}

/**
 * The removal log kept outside Redis (REMOVAL_LOG_DIR): each enroller appends
 * to a JSON Lines file of its own and syncs it before the removal is
 * reported, so a removal survives even the loss of every Redis replica.
 */
export class RemovalLogFile {
  readonly path: string;

  constructor(dir: string, name = hostname()) {
    this.path = join(dir, `removals-${name.replace(/[^A-Za-z0-9._-]/g, '_')}.jsonl`);
  }

  async append(record: RemovalRecord): Promise<void> {
    const fh = await open(this.path, 'a');
    try {
      await fh.write(`${JSON.stringify({ id: record.id, subject_id: record.subjectId, seq: record.seq, at_ms: record.atMs })}\n`);
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }
}

/** Every record of the removal log files at these paths (files, or directories of removals-*.jsonl). A torn last line is skipped. */
export async function readRemovalFiles(paths: string[]): Promise<RemovalRecord[]> {
  const files: string[] = [];
  for (const p of paths) {
    if ((await stat(p)).isDirectory()) files.push(...(await readdir(p)).filter((f) => /^removals-.*\.jsonl$/.test(f)).sort().map((f) => join(p, f)));
    else files.push(p);
  }
  const out: RemovalRecord[] = [];
  for (const file of files) {
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let rec: { id?: unknown; subject_id?: unknown; seq?: unknown; at_ms?: unknown };
      try {
        rec = JSON.parse(line);
      } catch (err) {
        // A crash mid-append leaves at most the last line torn: that removal was never reported as done.
        if (i >= lines.length - 2) return;
        throw new Error(`${file}:${i + 1}: not a removal record (${(err as Error).message})`);
      }
      if (typeof rec.id !== 'string' || !isStreamId(rec.id) || typeof rec.subject_id !== 'string' || !Number.isSafeInteger(rec.seq) || !Number.isFinite(rec.at_ms)) throw new Error(`${file}:${i + 1}: not a removal record`);
      out.push({ id: rec.id, subjectId: rec.subject_id, seq: rec.seq as number, atMs: rec.at_ms as number });
    });
  }
  return out;
}

/** One list, each removal once (a removal is its subject and sequence), oldest first. */
export function mergeRemovals(...lists: RemovalRecord[][]): RemovalRecord[] {
  const byKey = new Map<string, RemovalRecord>();
  for (const list of lists) for (const r of list) if (!byKey.has(`${r.subjectId}\u0000${r.seq}`)) byKey.set(`${r.subjectId}\u0000${r.seq}`, r);
  return [...byKey.values()].sort((a, b) => compareStreamIds(a.id, b.id) || a.seq - b.seq);
}
