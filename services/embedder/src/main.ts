import { splitAddress, checkFailpoints, getErrorMessage } from '@yoco/common';
import { createLogger, onShutdownSignal } from '@yoco/rpc';
import { readEmbedderConfig } from './config.js';
import { EmbedderWorker } from './embedder-worker.js';

const logger = createLogger('embedder');
try {
  checkFailpoints();
  const config = readEmbedderConfig();
  const worker = new EmbedderWorker(config, logger);
  onShutdownSignal(logger, () => worker.stop());
  const metrics = await worker.metrics.serve(...splitAddress(config.metricsAddress));
  await worker.start();
  logger.info({ grpcPort: worker.port, metricsPort: metrics.port, model: worker.modelId, dim: worker.profile.dim }, 'ready');
} catch (err) {
  logger.fatal({ err: getErrorMessage(err) }, 'embedder failed to start');
  process.exit(1);
}
