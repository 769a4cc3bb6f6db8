import { ConfigError, getErrorMessage, parse, type EnvSpec, type EnvVar } from '@yoco/common';
import { TemplateSealer } from '@yoco/gallery';

/** Where the store of record is: every process that reads or writes Redis. */
export interface RedisConfig {
  redisUrl: string;
  prefix: string;
}

export const REDIS_ENV: EnvSpec<RedisConfig> = {
  redisUrl: { name: 'REDIS_URL', default: 'redis://127.0.0.1:6379', parse: parse.string, doc: 'Redis (the store of record and the enrolment queue)' },
  prefix: { name: 'YOCO_PREFIX', default: 'yoco:', parse: parse.string, doc: 'key prefix in Redis' },
};

/** What every service has: its /metrics address and its drain time on SIGTERM. */
export interface ServiceBaseConfig {
  metricsAddress: string;
  shutdownGraceMs: number;
  otlpEndpoint: string;
  otlpFlushMs: number;
}

export const SERVICE_ENV: EnvSpec<ServiceBaseConfig> = {
  metricsAddress: { name: 'METRICS_ADDRESS', default: '0.0.0.0:9464', parse: parse.address, doc: 'host:port of /metrics' },
  shutdownGraceMs: { name: 'SHUTDOWN_GRACE_MS', default: 10_000, parse: parse.int(0, 600_000), doc: 'time in-flight calls (or running jobs) get on SIGTERM' },
  otlpEndpoint: { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', default: '', parse: parse.string, doc: 'OTLP/HTTP collector for traces (e.g. http://otel-collector:4318); empty = no tracing' },
  otlpFlushMs: { name: 'OTEL_BSP_SCHEDULE_DELAY', default: 5000, parse: parse.int(10, 600_000), doc: 'how long finished spans wait to be exported together (ms)' },
};

/** GRPC_ADDRESS with the service's own default port. */
export function grpcAddressEnv(defaultAddress: string, what: string): EnvVar<string> & { name: string } {
  return { name: 'GRPC_ADDRESS', default: defaultAddress, parse: parse.address, doc: `host:port the ${what} service binds` };
}

/** Templates sealed at rest (the shards open them, the enroller seals them). */
export interface SealConfig {
  templateKeysFile: string;
}

export const SEAL_ENV: EnvSpec<SealConfig> = {
  templateKeysFile: {
    name: 'TEMPLATE_KEYS_FILE',
    default: '',
    parse: parse.string,
    doc: 'AES-256-GCM keys for templates at rest: {"current": ID, "keys": {ID: base64 32 bytes}}; empty = records stored plain',
  },
};

/** The sealer of a SealConfig; undefined when templates are stored plain. A bad key file stops the process naming it. */
export function templateSealer(c: SealConfig): TemplateSealer | undefined {
  if (!c.templateKeysFile) return undefined;
  try {
    return TemplateSealer.fromFile(c.templateKeysFile);
  } catch (err) {
    throw new ConfigError('TEMPLATE_KEYS_FILE', getErrorMessage(err));
  }
}
