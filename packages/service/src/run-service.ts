import { checkFailpoints, getErrorMessage, splitAddress } from '@yoco/common';
import { createLogger, onShutdownSignal, type Logger, type ServiceMetrics } from '@yoco/rpc';

/** What a service's main hands to runService once its config is read. */
export interface RunnableService {
  readonly metrics: ServiceMetrics;
  start(): Promise<void>;
  /** Idempotent: SIGTERM, SIGINT and a failed start may all call it. */
  stop(): Promise<void>;
  /** Fields of the one 'ready' log line (the launcher reads grpcPort from it). */
  readyFields(): Record<string, unknown>;
}

export interface ServiceDefinition<C extends { metricsAddress: string }> {
  /** The logger's name and the words of the fatal line: 'shard', 'enroller', ... */
  name: string;
  readConfig(): C;
  create(config: C, logger: Logger): RunnableService | Promise<RunnableService>;
}

/**
 * The bootstrap every service shares: failpoints checked, config read (a bad
 * variable stops the process naming it), signals wired to a drain, /metrics
 * served, the service started, one 'ready' line logged. Any failure on the
 * way is one fatal line and exit code 1.
 */
export async function runService<C extends { metricsAddress: string }>(definition: ServiceDefinition<C>): Promise<void> {
  const logger = createLogger(definition.name);
  try {
    checkFailpoints();
    const config = definition.readConfig();
    const service = await definition.create(config, logger);
    onShutdownSignal(logger, () => service.stop());
    const metrics = await service.metrics.serve(...splitAddress(config.metricsAddress));
    await service.start();
    logger.info({ ...service.readyFields(), metricsPort: metrics.port }, 'ready');
  } catch (err) {
    logger.fatal({ err: getErrorMessage(err) }, `${definition.name} failed to start`);
    process.exit(1);
  }
}
