import { parse, readEnv, type EnvSpec } from '@yoco/common';
import { HEAD_ENV, type HeadConfig } from '@yoco/head';

export interface EnrollerConfig extends HeadConfig {
  redisUrl: string;
  prefix: string;
  metricsAddress: string;
  concurrency: number;
  shutdownGraceMs: number;
}

export const ENROLLER_ENV: EnvSpec<EnrollerConfig> = {
  ...HEAD_ENV,
  redisUrl: { name: 'REDIS_URL', default: 'redis://127.0.0.1:6379', parse: parse.string, doc: 'Redis (queue and store of record)' },
  prefix: { name: 'YOCO_PREFIX', default: 'yoco:', parse: parse.string, doc: 'key prefix in Redis' },
  metricsAddress: { name: 'METRICS_ADDRESS', default: '0.0.0.0:9464', parse: parse.address, doc: 'host:port of /metrics' },
  concurrency: { name: 'ENROLLER_CONCURRENCY', default: 8, parse: parse.int(1, 256), doc: 'jobs processed at once' },
  shutdownGraceMs: { name: 'SHUTDOWN_GRACE_MS', default: 10_000, parse: parse.int(0, 600_000), doc: 'time running jobs get on SIGTERM' },
};

export function readEnrollerConfig(env: NodeJS.ProcessEnv = process.env): EnrollerConfig {
  return readEnv(ENROLLER_ENV, env);
}
