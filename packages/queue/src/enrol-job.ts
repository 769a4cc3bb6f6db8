import { f32FromBytes, f32leBytes } from '@yoco/common';
import { StoreKeys } from '@yoco/gallery';

/** What an enrolment job carries. Vectors travel as base64 float32 and are stripped once the job ends. */
export type EnrolJobData = (
  | {
      kind: 'enrol';
      subjectId: string;
      vectors: string[];
      replace: boolean;
      vectorCount: number;
      /** A later removal of the subject took its vectors away: the job ends as stale, writing nothing. */
      superseded?: boolean;
      /**
       * Set (with the vectors dropped) once the write is in Redis. A worker that dies after that
       * but before BullMQ records completion leaves the job to be retried: the retry returns this.
       */
      applied?: EnrolJobResult;
    }
  | { kind: 'remove'; subjectId: string }
  | {
      kind: 'import';
      /** What GetJob shows for the job: the first subject and how many follow. */
      subjectId: string;
      subjects: ImportJobSubject[];
      /** As for an enrolment: set, with the vectors dropped, once every subject is in Redis. */
      applied?: EnrolJobResult;
    }
) & {
  /** The authenticated caller (its token's sub) that queued it: only it, or an admin, may look the job up. '' without authentication. */
  caller?: string;
};

export interface ImportJobSubject {
  subjectId: string;
  vectors: string[];
  replace: boolean;
  /** As for an enrolment: removed after this job was queued; skipped, outcome 'removed'. */
  superseded?: boolean;
}

/** What happened to one subject of an import. */
export interface ImportOutcome {
  subjectId: string;
  /** applied; stale (a newer replace or remove came first); removed (it was removed: imports do not bring it back). */
  outcome: 'applied' | 'stale' | 'removed';
  templateIds: string[];
}

export interface EnrolJobResult {
  /** The change's stream id: pass it to Identify for read-your-writes. */
  token: string;
  templateIds: string[];
  removed: string[];
  /** A newer replace or remove of the subject had already been applied; this job changed nothing. */
  stale: boolean;
  /** A removal of a subject that had no templates (nothing to remove; later enrolments queued before it still cannot land). */
  notFound?: boolean;
  /** An import's outcome per subject, in job order. */
  results?: ImportOutcome[];
}

/** Subjects one import job may carry. */
export const MAX_IMPORT_SUBJECTS = 256;

export const QUEUE_NAME = 'enrol';

/** BullMQ's key prefix under the deployment's prefix: 'yoco:' -> 'yoco:bull' (StoreKeys holds every key). */
export function bullPrefix(prefix: string): string {
  return new StoreKeys(prefix).queue;
}

/** A vector in a job: the codec's f32le bytes, as base64 because BullMQ job data is JSON. */
export function encodeVector(v: Float32Array): string {
  return f32leBytes(v).toString('base64');
}

/** Not validated: the store checks every vector it writes. Jobs of every release so far carry this form. */
export function decodeVector(s: string): Float32Array {
  return f32FromBytes(Buffer.from(s, 'base64'));
}

/** How long a request_id keeps naming its job: a retry within it gets the same job. As long as completed jobs are kept (JOB_OPTIONS). */
export const REQUEST_ID_TTL_MS = 3600 * 1000;

/** Attempts and backoff for transient faults (Redis blips); bad data fails at once. */
export const JOB_OPTIONS = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 500 },
  // Completed jobs keep their result (the token) for an hour, without vectors; failed jobs stay until listed and cleared.
  removeOnComplete: { age: 3600, count: 100_000 },
  removeOnFail: false,
} as const;
