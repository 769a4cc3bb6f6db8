import { checkEnv, checkFailpoints, getErrorMessage, splitAddress, type EnvSpec } from '@yoco/common';
import { createLogger, onShutdownSignal, type Logger, type ServiceMetrics } from '@yoco/rpc';
import { startTracing, stopTracing } from '@yoco/telemetry';

/** What a service's main hands to runService once its config is read. */
export interface RunnableService {
  readonly metrics: ServiceMetrics;
  start(): Promise<void>;
  /** Idempotent: SIGTERM, SIGINT and a failed start may all call it. */
  stop(): Promise<void>;
  /** Fields of the one 'ready' log line (the launcher reads grpcPort from it). */
  readyFields(): Record<string, unknown>;
}

export interface ServiceDefinition<C extends { metricsAddress: string; otlpEndpoint?: string; otlpFlushMs?: number }> {
  /** The logger's name and the words of the fatal line: 'shard', 'enroller', ... */
  name: string;
  /** Every variable the service reads (--check-config lists and checks them). */
  env: EnvSpec<C>;
  readConfig(): C;
  /** Checks beyond single variables that would otherwise only fail at start (files that must exist, pairs of settings). */
  check?(config: C): void;
  create(config: C, logger: Logger): RunnableService | Promise<RunnableService>;
}

/**
 * The bootstrap every service shares: failpoints checked, config read (a bad
 * variable stops the process naming it), signals wired to a drain, /metrics
 * served, the service started, one 'ready' line logged. Any failure on the
 * way is one fatal line and exit code 1.
 */
export async function runService<C extends { metricsAddress: string; otlpEndpoint?: string; otlpFlushMs?: number }>(definition: ServiceDefinition<C>): Promise<void> {
  if (process.argv.includes('--check-config')) process.exit(checkConfig(definition));
  const logger = createLogger(definition.name);
  const unknown = checkEnv(definition.env, process.env).problems.filter((p) => p.includes('not a setting of this service'));
  if (unknown.length > 0) logger.warn({ unknown }, 'environment variables this service does not read (run it with --check-config)');
  try {
    checkFailpoints();
    const config = definition.readConfig();
    startTracing({ service: definition.name, endpoint: config.otlpEndpoint ?? '', flushMs: config.otlpFlushMs });
    const service = await definition.create(config, logger);
    onShutdownSignal(logger, async () => {
      await service.stop();
      await stopTracing();
    });
    const metrics = await service.metrics.serve(...splitAddress(config.metricsAddress));
    await service.start();
    logger.info({ ...service.readyFields(), metricsPort: metrics.port }, 'ready');
  } catch (err) {
    logger.fatal({ err: getErrorMessage(err) }, `${definition.name} failed to start`);
    process.exit(1);
  }
}

/** Values that must not be shown: secrets by name, and passwords inside URLs. */
function redacted(name: string, value: unknown): string {
  const text = Array.isArray(value) ? value.join(',') : typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
  if (/SECRET|PASSWORD|TOKEN/.test(name) && !name.endsWith('_FILE')) return text ? '***' : '';
  // A redis-sentinel:// target may carry the sentinels' password as a query parameter too.
  return text.replace(/(\w+:\/\/[^:/@\s]*:)[^@/\s]+@/g, '$1***@').replace(/([?&](?:sentinelP|p)assword=)[^&\s]*/gi, '$1***');
}

/**
 * --check-config: reads and checks the environment without starting
 * anything. Prints the resolved config (secrets redacted), one variable a
 * line, and returns 0; or prints every problem, one a line, and returns 2.
 */
export function checkConfig<C extends { metricsAddress: string; otlpEndpoint?: string; otlpFlushMs?: number }>(definition: ServiceDefinition<C>, env: NodeJS.ProcessEnv = process.env): number {
  const { config, problems } = checkEnv(definition.env, env);
  if (config) {
    try {
      definition.readConfig();
      definition.check?.(config);
      checkFailpoints();
    } catch (err) {
      problems.push(getErrorMessage(err));
    }
  }
  if (problems.length > 0) {
    for (const p of problems) process.stderr.write(`${definition.name}: ${p}\n`);
    return 2;
  }
  const c = config as Record<string, unknown>;
  for (const [key, v] of Object.entries(definition.env as Record<string, { name: string }>)) process.stdout.write(`${v.name}=${redacted(v.name, c[key])}\n`);
  return 0;
}
