import { f32FromBytes } from '@yoco/common';

/** What an enrolment job carries. Vectors travel as base64 float32 and are stripped once the job ends. */
export type EnrolJobData =
  | {
      kind: 'enrol';
      subjectId: string;
      vectors: string[];
      replace: boolean;
      vectorCount: number;
      /**
       * Set (with the vectors dropped) once the write is in Redis. A worker that dies after that
       * but before BullMQ records completion leaves the job to be retried: the retry returns this.
       */
      applied?: EnrolJobResult;
    }
  | { kind: 'remove'; subjectId: string };

export interface EnrolJobResult {
  /** The change's stream id: pass it to Identify for read-your-writes. */
  token: string;
  templateIds: string[];
  removed: string[];
  /** A newer replace or remove of the subject had already been applied; this job changed nothing. */
  stale: boolean;
}

export const QUEUE_NAME = 'enrol';

/** BullMQ's key prefix under the deployment's prefix: 'yoco:' -> 'yoco:bull'. */
export function bullPrefix(prefix: string): string {
  return `${prefix}bull`;
}

export function encodeVector(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

export function decodeVector(s: string): Float32Array {
  return f32FromBytes(Buffer.from(s, 'base64'));
}

/** Attempts and backoff for transient faults (Redis blips); bad data fails at once. */
export const JOB_OPTIONS = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 500 },
  // Completed jobs keep their result (the token) for an hour, without vectors; failed jobs stay until listed and cleared.
  removeOnComplete: { age: 3600, count: 100_000 },
  removeOnFail: false,
} as const;
