import { assertVectors, getErrorMessage } from '@yoco/common';
import { assertSubjectId } from '@yoco/gallery';
import { isServiceError, unary } from '@yoco/rpc';
import { matcherStub } from '../matcher-client.js';
import { ProgressBar } from '../progress-bar.js';
import { countBulk, readBulk, RejectionLog, type BulkRecord } from '../records.js';

export interface ImportOptions {
  /** The Matcher: an import is a job of the ordered write path, like any Enrol. */
  address: string;
  /** Import calls in flight at once. */
  concurrency: number;
  /** Every rejected record, with its reason, as JSON Lines. */
  failures?: string;
  /** A JSON summary on stdout instead of lines. */
  json?: boolean;
}

/** Subjects per Import call (the Matcher's limit), and the bytes of vectors one call may carry. */
const BATCH_SUBJECTS = 256;
const BATCH_BYTES = 8 * 1024 * 1024;

/**
 * Bulk-loads JSON Lines ({"subject_id", "vector" | "vectors", "replace"?}) or
 * a directory of .json files through the Matcher's Import: each call is one
 * job of the ordered write path, so an import is ordered with every Enrol and
 * Remove, and replaying an old file cannot bring back a subject removed since
 * (the Matcher reports it as removed). Streamed: records are checked as they
 * are read and sent in batches, with at most `concurrency` calls in flight;
 * a bad record fails alone. Returns [imported, failed].
 */
export async function importFile(path: string, options: ImportOptions): Promise<[number, number]> {
  const client = matcherStub(options.address);
  const rejected = new RejectionLog(options.failures);
  try {
    const status = await unary(client, 'ClusterStatus', {}, { deadline: Date.now() + 10_000 });
    const dim = status.dim;
    if (!dim) throw new Error(`the cluster at ${options.address} does not know its vector width yet (no shard has answered): start the shards first`);
    const bar = new ProgressBar(await countBulk(path), 'import');
    const reject = (r: { where: string; reason: string }) => {
      rejected.add(r);
      bar.tick(false);
    };
    const seen = new Map<string, string>();
    let ok = 0;
    let skipped = 0;
    const inFlight = new Set<Promise<void>>();
    const send = (part: BulkRecord[]) => {
      const p = (async () => {
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
            if (r.outcome === 'removed') reject({ where: part[i].where, reason: `subject '${r.subjectId}' was removed; an import does not bring it back (enrol it explicitly)` });
            else {
              if (r.outcome === 'stale') skipped++;
              else ok++;
              bar.tick(true);
            }
          });
        } catch (err) {
          const reason = isServiceError(err) ? err.details : getErrorMessage(err);
          for (const e of part) reject({ where: e.where, reason });
        }
      })();
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      return p;
    };
    let part: BulkRecord[] = [];
    let bytes = 0;
    for await (const rec of readBulk(path, (r) => reject(r))) {
      try {
        // Import carries vectors only (an ordered batch of the write path); photos are embedded one call each.
        if (rec.images.length > 0) throw new Error('images are embedded by the cluster: load image records with `yoco enrol --bulk`');
        assertSubjectId(rec.subjectId);
        const first = seen.get(rec.subjectId);
        if (first !== undefined) throw new Error(`subject '${rec.subjectId}' already appears at ${first}: put all its vectors on one line`);
        for (const v of rec.vectors) assertVectors(v, dim, 'template', 1);
        seen.set(rec.subjectId, rec.where);
      } catch (err) {
        reject({ where: rec.where, reason: getErrorMessage(err) });
        continue;
      }
      const size = rec.vectors.reduce((s, v) => s + v.byteLength, 0);
      if (part.length > 0 && (part.length === BATCH_SUBJECTS || bytes + size > BATCH_BYTES)) {
        // Bounded memory: at most `concurrency` batches in flight, then the reading waits.
        if (inFlight.size >= Math.max(1, options.concurrency)) await Promise.race(inFlight);
        send(part);
        part = [];
        bytes = 0;
      }
      part.push(rec);
      bytes += size;
    }
    if (part.length > 0) send(part);
    await Promise.all(inFlight);
    bar.finish();
    if (options.json) console.log(JSON.stringify({ imported: ok, skipped, ...rejected.toJSON(options.failures) }, null, 2));
    else {
      console.log(`imported ${ok} subjects, ${rejected.count} failed${skipped > 0 ? `, ${skipped} skipped (a newer enrolment or removal came first)` : ''}`);
      rejected.print(options.failures);
    }
    return [ok, rejected.count];
  } finally {
    client.close();
    await rejected.close();
  }
}
