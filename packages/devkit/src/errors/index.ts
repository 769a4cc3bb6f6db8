export { RedisBinaryMissingError } from './redis-binary-missing-error.js';
