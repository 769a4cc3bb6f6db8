export { EnrolQueue, assertRequestId, type EnrolQueueOptions, type JobStatus } from './enrol-queue.js';
export { JobFailedError } from './errors/index.js';
export {
  QUEUE_NAME,
  JOB_OPTIONS,
  MAX_IMPORT_SUBJECTS,
  REQUEST_ID_TTL_MS,
  bullPrefix,
  encodeVector,
  decodeVector,
  type EnrolJobData,
  type EnrolJobResult,
  type ImportJobSubject,
  type ImportOutcome,
} from './enrol-job.js';
export { supersedeJobsOf, jobsCarrying, unindexJob } from './job-vectors.js';
