import { ConfigError, getErrorMessage, parse, type EnvSpec, type EnvVar } from '@yoco/common';
import { readFileSync } from 'node:fs';
import { SENTINEL_SCHEME, TemplateSealer } from '@yoco/gallery';

/** Where the store of record is: every process that reads or writes Redis. */
export interface RedisConfig {
  redisUrl: string;
  prefix: string;
  redisSentinels: string[];
  redisMasterName: string;
  redisPasswordFile: string;
  redisSentinelPasswordFile: string;
  minReplicasAck: number;
  ackTimeoutMs: number;
}

export const REDIS_ENV: EnvSpec<RedisConfig> = {
  redisUrl: { name: 'REDIS_URL', default: 'redis://127.0.0.1:6379', parse: parse.string, doc: 'Redis (the store of record and the enrolment queue): redis://, or redis-sentinel://host:port,.../masterName' },
  prefix: { name: 'YOCO_PREFIX', default: 'yoco:', parse: parse.string, doc: 'key prefix in Redis' },
  redisSentinels: { name: 'REDIS_SENTINELS', default: [], parse: (raw) => parse.list(raw).map(parse.address), doc: 'Redis Sentinel host:port list; when set, the primary is asked of them (and again after a failover) instead of REDIS_URL' },
  redisMasterName: { name: 'REDIS_MASTER_NAME', default: 'yoco', parse: parse.string, doc: 'the primary\'s name in Sentinel' },
  redisPasswordFile: { name: 'REDIS_PASSWORD_FILE', default: '', parse: parse.string, doc: 'a file holding the Redis password (with REDIS_SENTINELS)' },
  minReplicasAck: { name: 'REDIS_MIN_REPLICAS_ACK', default: 0, parse: parse.int(0, 100), doc: 'replicas a write (a queued job, an applied enrolment or removal) must reach (Redis WAIT) before it is reported; match it with min-replicas-to-write on the primary' },
  ackTimeoutMs: { name: 'REDIS_ACK_TIMEOUT_MS', default: 1000, parse: parse.int(1, 600_000), doc: 'how long one WAIT for those replicas may take' },
  redisSentinelPasswordFile: { name: 'REDIS_SENTINEL_PASSWORD_FILE', default: '', parse: parse.string, doc: 'a file holding the sentinels\' own password' },
};

/**
 * The one string every connection is opened from: REDIS_URL, or with
 * REDIS_SENTINELS a redis-sentinel:// target (passwords read from their files).
 */
export function redisTarget(c: RedisConfig): string {
  if (c.redisSentinels.length === 0) return c.redisUrl;
  const secret = (file: string, name: string) => {
    if (!file) return '';
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(name, `cannot read ${file}: ${getErrorMessage(err)}`);
    }
  };
  const password = secret(c.redisPasswordFile, 'REDIS_PASSWORD_FILE');
  const sentinelPassword = secret(c.redisSentinelPasswordFile, 'REDIS_SENTINEL_PASSWORD_FILE');
  const auth = password ? `:${encodeURIComponent(password)}@` : '';
  const query = sentinelPassword ? `?sentinelPassword=${encodeURIComponent(sentinelPassword)}` : '';
  return `${SENTINEL_SCHEME}//${auth}${c.redisSentinels.join(',')}/${encodeURIComponent(c.redisMasterName)}${query}`;
}

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
