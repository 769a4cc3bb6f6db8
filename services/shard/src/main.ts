import { resolveHead, runService } from '@yoco/service';
import { readShardConfig } from './config.js';
import { ShardWorker } from './shard-worker.js';

await runService({
  name: 'shard',
  readConfig: readShardConfig,
  create: async (config, logger) => new ShardWorker(config, await resolveHead(config), logger),
});
