import { splitAddress, checkFailpoints, getErrorMessage } from '@yoco/common';
import { resolveHead } from '@yoco/head';
import { createLogger, onShutdownSignal } from '@yoco/rpc';
import { readEnrollerConfig } from './config.js';
import { Enroller } from './enroller.js';

const logger = createLogger('enroller');
try {
  checkFailpoints();
  const config = readEnrollerConfig();
  const head = await resolveHead(config);
  const enroller = new Enroller(config, head.dim, logger);
  onShutdownSignal(logger, () => enroller.stop());
  const metrics = await enroller.metrics.serve(...splitAddress(config.metricsAddress));
  await enroller.start();
  logger.info({ metricsPort: metrics.port, concurrency: config.concurrency, dim: head.dim }, 'ready');
} catch (err) {
  logger.fatal({ err: getErrorMessage(err) }, 'enroller failed to start');
  process.exit(1);
}
