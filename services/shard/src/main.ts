import { resolveHead, runService, serverSecurity, templateSealer } from '@yoco/service';
import { readShardConfig, SHARD_ENV } from './config.js';
import { ShardWorker } from './shard-worker.js';

await runService({
  name: 'shard',
  env: SHARD_ENV,
  readConfig: readShardConfig,
  check: (config) => {
    serverSecurity(config);
    templateSealer(config);
  },
  create: async (config, logger) => new ShardWorker(config, await resolveHead(config), logger),
});
