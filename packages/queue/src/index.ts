export { EnrolQueue, JobFailedError, type EnrolQueueOptions, type JobStatus } from './enrol-queue.js';
export { QUEUE_NAME, JOB_OPTIONS, bullPrefix, encodeVector, decodeVector, type EnrolJobData, type EnrolJobResult } from './enrol-job.js';
