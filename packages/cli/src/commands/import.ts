import { matcherStub } from '../matcher-client.js';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { assertVectors, getErrorMessage } from '@yoco/common';
import { assertSubjectId } from '@yoco/gallery';
import { unary } from '@yoco/rpc';
import type * as grpc from '@grpc/grpc-js';
import { ProgressBar } from '../progress-bar.js';

interface Line {
  subject_id?: string;
  subjectId?: string;
  vector?: number[];
  vectors?: number[][];
  replace?: boolean;
}

export interface ImportOptions {
  /** The Matcher: an import is a job of the ordered write path, like any Enrol. */
  address: string;
  /** Import calls in flight at once. */
  concurrency: number;
}

/** Subjects per Import call (the Matcher's limit), and the bytes of vectors one call may carry. */
const BATCH_SUBJECTS = 256;
const BATCH_BYTES = 8 * 1024 * 1024;

interface Entry {
  line: number;
  subjectId: string;
  vectors: Float32Array[];
  replace: boolean;
}

interface ImportResult {
  subjectId: string;
  outcome: 'applied' | 'stale' | 'removed';
}

/**
 * Bulk-loads JSON Lines ({"subject_id", "vector" | "vectors", "replace"?})
 * through the Matcher's Import: each call is one job of the ordered write
 * path, so an import is ordered with every Enrol and Remove, and replaying an
 * old file cannot bring back a subject removed since (the Matcher reports it
 * as removed). Lines are checked here first, so a bad line fails alone.
 * Returns [imported, failed].
 */
export async function importFile(path: string, options: ImportOptions): Promise<[number, number]> {
  const client = matcherStub(options.address);
  try {
    const status = await unary(client, 'ClusterStatus', {}, { deadline: Date.now() + 10_000 });
    const dim = status.dim;
    if (!dim) throw new Error(`the cluster at ${options.address} does not know its vector width yet (no shard has answered): start the shards first`);
    const failures: { line: number; message: string }[] = [];
    const entries: Entry[] = [];
    const seen = new Map<string, number>();
    let n = 0;
    for await (const text of createInterface({ input: createReadStream(path) })) {
      n++;
      if (!text.trim()) continue;
      try {
        const rec = JSON.parse(text) as Line;
        const subjectId = rec.subject_id ?? rec.subjectId ?? '';
        assertSubjectId(subjectId);
        const first = seen.get(subjectId);
        if (first !== undefined) throw new Error(`subject '${subjectId}' already appears on line ${first}: put all its vectors on one line`);
        const vectors = (rec.vectors ?? (rec.vector ? [rec.vector] : [])).map((v) => Float32Array.from(v));
        if (vectors.length === 0) throw new Error('no vector (set "vector" or "vectors")');
        for (const v of vectors) assertVectors(v, dim, 'template', 1);
        seen.set(subjectId, n);
        entries.push({ line: n, subjectId, vectors, replace: Boolean(rec.replace) });
      } catch (err) {
        failures.push({ line: n, message: getErrorMessage(err) });
      }
    }
    const bar = new ProgressBar(entries.length + failures.length, 'import');
    for (let i = 0; i < failures.length; i++) bar.tick(false);
    let ok = 0;
    let skipped = 0;
    const batches = batch(entries);
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const part = batches[next++];
        try {
          const res = await unary(
            client,
            'Import',
            {
              subjects: part.map((e) => ({ subjectId: e.subjectId, replace: e.replace, vectors: e.vectors.map((v) => ({ f32le: Buffer.from(v.buffer, v.byteOffset, v.byteLength) })) })),
              wait: true,
            },
            { deadline: Date.now() + 120_000 },
          );
          res.results.forEach((r, i) => {
            if (r.outcome === 'removed') {
              failures.push({ line: part[i].line, message: `subject '${r.subjectId}' was removed; an import does not bring it back (enrol it explicitly)` });
              bar.tick(false);
            } else {
              if (r.outcome === 'stale') skipped++;
              else ok++;
              bar.tick(true);
            }
          });
        } catch (err) {
          const reason = (err as grpc.ServiceError).details ?? getErrorMessage(err);
          for (const e of part) {
            failures.push({ line: e.line, message: reason });
            bar.tick(false);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
    bar.finish();
    failures.sort((a, b) => a.line - b.line);
    console.log(`imported ${ok} subjects, ${failures.length} failed${skipped > 0 ? `, ${skipped} skipped (a newer enrolment or removal came first)` : ''}`);
    for (const f of failures.slice(0, 20)) console.log(`  line ${f.line}: ${f.message}`);
    if (failures.length > 20) console.log(`  ... and ${failures.length - 20} more`);
    return [ok, failures.length];
  } finally {
    client.close();
  }
}

/** Consecutive entries in calls of at most BATCH_SUBJECTS subjects and BATCH_BYTES of vectors. */
function batch(entries: Entry[]): Entry[][] {
  const out: Entry[][] = [];
  let part: Entry[] = [];
  let bytes = 0;
  for (const e of entries) {
    const size = e.vectors.reduce((s, v) => s + v.byteLength, 0);
    if (part.length > 0 && (part.length === BATCH_SUBJECTS || bytes + size > BATCH_BYTES)) {
      out.push(part);
      part = [];
      bytes = 0;
    }
    part.push(e);
    bytes += size;
  }
  if (part.length > 0) out.push(part);
  return out;
}
