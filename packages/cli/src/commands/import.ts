import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { GalleryStore } from '@yoco/gallery';
import { Redis } from 'ioredis';
import { ProgressBar } from '../progress-bar.js';

interface Line {
  subject_id?: string;
  subjectId?: string;
  vector?: number[];
  vectors?: number[][];
  replace?: boolean;
}

export interface ImportOptions {
  redisUrl: string;
  prefix: string;
  dim: number | undefined;
  concurrency: number;
}

/** The dim the store was created with, else the one given. */
async function storeDim(redis: Redis, prefix: string, given: number | undefined): Promise<number> {
  const stored = await redis.hget(`${prefix}meta`, 'dim');
  if (stored) return Number(stored);
  if (!given) throw new Error('the store is new: pass --dim (or YOCO_DIM) to say how wide the vectors are');
  return given;
}

/**
 * Bulk-loads JSON Lines ({"subject_id", "vector" | "vectors", "replace"?})
 * straight into the store of record; shards pick the changes up from the
 * stream. Returns [imported, failed].
 */
export async function importFile(path: string, options: ImportOptions): Promise<[number, number]> {
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 3 });
  try {
    const dim = await storeDim(redis, options.prefix, options.dim);
    const store = new GalleryStore(redis, { prefix: options.prefix, dim });
    await store.checkMeta();
    const lines: string[] = [];
    for await (const line of createInterface({ input: createReadStream(path) })) if (line.trim()) lines.push(line);
    const bar = new ProgressBar(lines.length, 'import');
    let ok = 0;
    const failures: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < lines.length) {
        const n = next++;
        try {
          const rec = JSON.parse(lines[n]) as Line;
          const id = rec.subject_id ?? rec.subjectId ?? '';
          const vectors = (rec.vectors ?? (rec.vector ? [rec.vector] : [])).map((v) => Float32Array.from(v));
          await store.put(id, vectors, { replace: rec.replace });
          ok++;
          bar.tick(true);
        } catch (err) {
          failures.push(`line ${n + 1}: ${(err as Error).message}`);
          bar.tick(false);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
    bar.finish();
    console.log(`imported ${ok} subjects, ${failures.length} failed`);
    for (const f of failures.slice(0, 20)) console.log(`  ${f}`);
    if (failures.length > 20) console.log(`  ... and ${failures.length - 20} more`);
    return [ok, failures.length];
  } finally {
    redis.disconnect();
  }
}
