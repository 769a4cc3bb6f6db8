import { runService, serverSecurity } from '@yoco/service';
import { EMBEDDER_ENV, readEmbedderConfig } from './config.js';
import { EmbedderWorker, resolveProfile } from './embedder-worker.js';

await runService({
  name: 'embedder',
  env: EMBEDDER_ENV,
  readConfig: readEmbedderConfig,
  check: (config) => {
    serverSecurity(config);
    resolveProfile(config.profile, config.modelsDir);
  },
  create: (config, logger) => new EmbedderWorker(config, logger),
});
