import { runService } from '@yoco/service';
import { readEmbedderConfig } from './config.js';
import { EmbedderWorker } from './embedder-worker.js';

await runService({ name: 'embedder', readConfig: readEmbedderConfig, create: (config, logger) => new EmbedderWorker(config, logger) });
