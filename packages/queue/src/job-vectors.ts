import { StoreKeys } from '@yoco/gallery';
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { EnrolJobData, EnrolJobResult } from './enrol-job.js';

type EnrolQueueLike = Queue<EnrolJobData, EnrolJobResult>;

/**
 * After a removal: every job queued before it (id < `removalSeq`) that still
 * carries the subject's vectors (waiting, delayed for a retry, active, failed)
 * loses them and is marked superseded, so it ends as stale when it runs
 * instead of failing for want of vectors. Found through the subject's job
 * index, and, in case an index write was lost, among the failed jobs.
 * Returns how many jobs were stripped.
 */
export async function supersedeJobsOf(queue: EnrolQueueLike, redis: Redis, prefix: string, subjectId: string, removalSeq: number): Promise<number> {
  const key = new StoreKeys(prefix).jobsOf(subjectId);
  const ids = new Set(await redis.smembers(key));
  for (const j of await queue.getFailed(0, 999)) if (j.id && carries(j.data, subjectId)) ids.add(j.id);
  let stripped = 0;
  for (const id of ids) {
    if (Number(id) >= removalSeq) continue;
    const job = await Job.fromId<EnrolJobData, EnrolJobResult>(queue, id);
    if (job && carries(job.data, subjectId)) {
      await job.updateData(withoutSubject(job.data, subjectId));
      stripped++;
    }
    await redis.srem(key, id);
  }
  return stripped;
}

/** Jobs of a subject that still carry vectors (the receipt counts them: 0 after a removal). */
export async function jobsCarrying(queue: EnrolQueueLike, redis: Redis, prefix: string, subjectId: string): Promise<number> {
  let n = 0;
  for (const id of await redis.smembers(new StoreKeys(prefix).jobsOf(subjectId))) {
    const job = await Job.fromId<EnrolJobData, EnrolJobResult>(queue, id);
    if (job && carries(job.data, subjectId)) n++;
  }
  for (const j of await queue.getFailed(0, 999)) if (carries(j.data, subjectId)) n++;
  return n;
}

/** Drops a finished job from its subjects' indexes (its vectors are gone from it). */
export async function unindexJob(redis: Redis, prefix: string, data: EnrolJobData, jobId: string): Promise<void> {
  const keys = new StoreKeys(prefix);
  const subjects = data.kind === 'enrol' ? [data.subjectId] : data.kind === 'import' ? data.subjects.map((s) => s.subjectId) : [];
  await Promise.all(subjects.map((s) => redis.srem(keys.jobsOf(s), jobId)));
}

function carries(data: EnrolJobData, subjectId: string): boolean {
  if (data.kind === 'enrol') return data.subjectId === subjectId && data.vectors.length > 0;
  if (data.kind === 'import') return data.subjects.some((s) => s.subjectId === subjectId && s.vectors.length > 0);
  return false;
}

function withoutSubject(data: EnrolJobData, subjectId: string): EnrolJobData {
  if (data.kind === 'enrol') return { ...data, vectors: [], superseded: true };
  if (data.kind === 'import') return { ...data, subjects: data.subjects.map((s) => (s.subjectId === subjectId ? { ...s, vectors: [], superseded: true } : s)) };
  return data;
}
