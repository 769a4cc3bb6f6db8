import { parse, readEnv, type EnvSpec } from '@yoco/common';

export interface CoordinatorConfig {
  grpcAddress: string;
  metricsAddress: string;
  /** Static shard replica addresses (host:port); each replica reports its own index. */
  shardAddresses: string[];
  /** Or a DNS name (host:port) resolved to every replica, as a Kubernetes headless service gives. */
  shardDns: string;
  /** How often replicas' status is polled and DNS re-resolved. */
  refreshMs: number;
  /** 'auto' (recent p95 of the shard) or a fixed delay in ms before a hedged request; 0 turns hedging off. */
  hedgeDelay: 'auto' | number;
  /** Deadline for requests that carry none. */
  defaultTimeoutMs: number;
  defaultThreshold: number;
  redisUrl: string;
  prefix: string;
  shutdownGraceMs: number;
  embedderAddress: string;
  maxImageBytes: number;
}

export const COORDINATOR_ENV: EnvSpec<CoordinatorConfig> = {
  grpcAddress: { name: 'GRPC_ADDRESS', default: '127.0.0.1:50051', parse: parse.address, doc: 'host:port the Matcher service binds' },
  metricsAddress: { name: 'METRICS_ADDRESS', default: '0.0.0.0:9464', parse: parse.address, doc: 'host:port of /metrics' },
  shardAddresses: {
    name: 'SHARD_ADDRESSES',
    default: [],
    parse: (raw) => parse.list(raw).map(parse.address),
    doc: 'comma-separated host:port of every shard replica',
  },
  shardDns: { name: 'SHARD_DNS', default: '', parse: parse.address, doc: 'host:port resolved to every shard replica (headless service)' },
  refreshMs: { name: 'SHARD_REFRESH_MS', default: 1000, parse: parse.int(50, 600_000), doc: 'status poll and DNS refresh period' },
  hedgeDelay: {
    name: 'HEDGE_DELAY_MS',
    default: 'auto',
    parse: (raw) => (raw === 'auto' ? 'auto' : parse.int(0, 600_000)(raw)),
    doc: "delay before a hedged request to another replica: 'auto' (the shard's recent p95) or ms; 0 = off",
  },
  defaultTimeoutMs: { name: 'DEFAULT_TIMEOUT_MS', default: 10_000, parse: parse.int(1, 600_000), doc: 'deadline for calls that set none' },
  defaultThreshold: { name: 'DEFAULT_THRESHOLD', default: 0.5, parse: parse.number(Number.MIN_VALUE, 1), doc: 'acceptance threshold when a request sets none' },
  redisUrl: { name: 'REDIS_URL', default: 'redis://127.0.0.1:6379', parse: parse.string, doc: 'Redis (store of record)' },
  prefix: { name: 'YOCO_PREFIX', default: 'yoco:', parse: parse.string, doc: 'key prefix in Redis' },
  shutdownGraceMs: { name: 'SHUTDOWN_GRACE_MS', default: 10_000, parse: parse.int(0, 600_000), doc: 'time in-flight calls get on SIGTERM' },
  embedderAddress: { name: 'EMBEDDER_ADDRESS', default: '', parse: parse.address, doc: 'the Embedder (host:port) for image probes; empty = vectors only' },
  maxImageBytes: { name: 'MAX_IMAGE_BYTES', default: 10 * 1024 * 1024, parse: parse.int(1, 1 << 30), doc: 'largest image probe accepted' },
};

export function readCoordinatorConfig(env: NodeJS.ProcessEnv = process.env): CoordinatorConfig {
  const c = readEnv(COORDINATOR_ENV, env);
  if (c.shardAddresses.length === 0 && !c.shardDns) throw new Error('set SHARD_ADDRESSES or SHARD_DNS: the coordinator needs its shards');
  return c;
}
