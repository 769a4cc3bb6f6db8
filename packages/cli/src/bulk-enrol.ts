import { templateIdOf } from '@yoco/gallery';
import { isServiceError, Status, statusName, unary, type v1 } from '@yoco/rpc';
import { readFile } from 'node:fs/promises';
import { ProgressBar } from './progress-bar.js';
import { getErrorMessage } from '@yoco/common';

export interface EnrolRecord {
  subjectId: string;
  vectors: Float32Array[];
  /** Image files the cluster embeds; read only when this record is sent. */
  images?: string[];
  /** Where it was read (file:line), for the failure report. */
  where?: string;
}

export interface BulkSummary {
  accepted: number;
  unchanged: number;
  failed: { subjectId: string; reason: string; where?: string }[];
  /** Job ids of the accepted enrolments, in order. */
  jobs: string[];
}

/**
 * Enrols many subjects through the Matcher, `concurrency` at a time. Resumable:
 * a subject whose stored template ids already equal this content's (ids are
 * content digests) is skipped, so re-running after a crash only sends the rest.
 * A subject given by images cannot be compared before the cluster embeds them,
 * so it is sent again; the same photos give the same templates, so the
 * outcome is the same. Each accepted subject is enrolled with replace, so the
 * gallery ends equal to the input.
 */
export async function bulkEnrol(client: v1.MatcherClient, records: AsyncIterable<EnrolRecord> | Iterable<EnrolRecord>, total: number, concurrency: number, label = 'enrol'): Promise<BulkSummary> {
  const summary: BulkSummary = { accepted: 0, unchanged: 0, failed: [], jobs: [] };
  const bar = new ProgressBar(total, label);
  const iterator = (Symbol.asyncIterator in records ? records[Symbol.asyncIterator]() : (records as Iterable<EnrolRecord>)[Symbol.iterator]()) as
    AsyncIterator<EnrolRecord> | Iterator<EnrolRecord>;
  const deadline = () => Date.now() + 30_000;
  const one = async (r: EnrolRecord) => {
    const want = [...new Set(r.vectors.map((v) => templateIdOf(r.subjectId, v)))].sort();
    try {
      if (!r.images?.length) {
        const have = await patient(() => unary(client, 'GetSubject', { subjectId: r.subjectId }, { deadline: deadline() })).catch((err) => {
          if (isServiceError(err) && err.code === Status.NOT_FOUND) return { templateIds: [] };
          throw err;
        });
        if (have.templateIds.length === want.length && [...have.templateIds].sort().every((id, i) => id === want[i])) {
          summary.unchanged++;
          bar.tick(true);
          return;
        }
      }
      const probes = [
        ...(await Promise.all((r.images ?? []).map(async (f) => ({ image: await readFile(f) })))),
        ...r.vectors.map((v) => ({ vector: { f32le: Buffer.from(v.buffer, v.byteOffset, v.byteLength) } })),
      ];
      // Embedding takes longer than a lookup: images get a minute.
      const res = await patient(() => unary(client, 'Enrol', { subjectId: r.subjectId, probes, replace: true }, { deadline: Date.now() + (r.images?.length ? 60_000 : 30_000) }));
      summary.accepted++;
      summary.jobs.push(res.jobId);
      bar.tick(true);
    } catch (err) {
      const reason = isServiceError(err) ? `${statusName(err.code)}: ${err.details}` : getErrorMessage(err);
      summary.failed.push({ subjectId: r.subjectId, reason, where: r.where });
      bar.tick(false);
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, concurrency) }, async () => {
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        await one(next.value);
      }
    }),
  );
  bar.finish();
  return summary;
}

/** Polls GetJob until every job has completed or failed; returns the failed ones. */
export async function waitForJobs(client: v1.MatcherClient, jobs: string[], timeoutMs = 600_000): Promise<{ jobId: string; subjectId: string; reason: string }[]> {
  const failed: { jobId: string; subjectId: string; reason: string }[] = [];
  const until = Date.now() + timeoutMs;
  // Jobs finish roughly in order: walk the list, waiting on each until it is done.
  for (const jobId of jobs) {
    for (;;) {
      const s = await patient(() => unary(client, 'GetJob', { jobId }, { deadline: Date.now() + 10_000 }));
      if (s.state === 'completed') break;
      if (s.state === 'failed') {
        failed.push({ jobId, subjectId: s.subjectId, reason: s.failedReason });
        break;
      }
      if (Date.now() > until) throw new Error(`job ${jobId} still ${s.state} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return failed;
}

/**
 * A call that the Matcher's per-caller limits may refuse (RESOURCE_EXHAUSTED: "retry shortly"): retried
 * with backoff, so a bulk load runs at the rate the caller is allowed instead of failing records.
 */
export async function patient<T>(call: () => Promise<T>, tries = 30): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!isServiceError(err) || err.code !== Status.RESOURCE_EXHAUSTED || attempt >= tries) throw err;
      await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt) * (0.5 + Math.random() / 2)));
    }
  }
}
