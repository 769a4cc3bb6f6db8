export { ShardWorker, MAX_TOP_K } from './shard-worker.js';
export { readShardConfig, SHARD_ENV, type ShardConfig } from './config.js';
