import { splitAddress, checkFailpoints, getErrorMessage } from '@yoco/common';
import { resolveHead } from '@yoco/head';
import { createLogger, onShutdownSignal } from '@yoco/rpc';
import { readShardConfig } from './config.js';
import { ShardWorker } from './shard-worker.js';

const logger = createLogger('shard');
try {
  checkFailpoints();
  const config = readShardConfig();
  const head = await resolveHead(config);
  const worker = new ShardWorker(config, head, logger);
  onShutdownSignal(logger, () => worker.stop());
  const metrics = await worker.metrics.serve(...splitAddress(config.metricsAddress));
  await worker.start();
  // One line the launcher (and people) can read: where this shard listens.
  logger.info({ grpcPort: worker.port, metricsPort: metrics.port, index: config.index, count: config.count }, 'ready');
} catch (err) {
  logger.fatal({ err: getErrorMessage(err) }, 'shard failed to start');
  process.exit(1);
}
