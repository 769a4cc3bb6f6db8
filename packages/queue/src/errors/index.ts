export { JobFailedError } from './job-failed-error.js';
