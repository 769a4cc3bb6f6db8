export { ShardUnavailableError } from './shard-unavailable-error.js';
