import { splitAddress, checkFailpoints, getErrorMessage } from '@yoco/common';
import { createLogger, onShutdownSignal } from '@yoco/rpc';
import { readCoordinatorConfig } from './config.js';
import { Coordinator } from './coordinator.js';

const logger = createLogger('coordinator');
try {
  checkFailpoints();
  const config = readCoordinatorConfig();
  const coordinator = new Coordinator(config, logger);
  onShutdownSignal(logger, () => coordinator.stop());
  const metrics = await coordinator.metrics.serve(...splitAddress(config.metricsAddress));
  await coordinator.start();
  logger.info({ grpcPort: coordinator.port, metricsPort: metrics.port, shards: coordinator.directory.count }, 'ready');
} catch (err) {
  logger.fatal({ err: getErrorMessage(err) }, 'coordinator failed to start');
  process.exit(1);
}
