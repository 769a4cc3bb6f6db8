import { hostname } from 'node:os';
import { parse, readEnv, type EnvSpec } from '@yoco/common';
import { grpcAddressEnv, HEAD_ENV, REDIS_ENV, SEAL_ENV, SERVER_SECURITY_ENV, SERVICE_ENV, type HeadConfig, type RedisConfig, type SealConfig, type ServerSecurityConfig, type ServiceBaseConfig } from '@yoco/service';

export interface ShardConfig extends HeadConfig, RedisConfig, ServiceBaseConfig, ServerSecurityConfig, SealConfig {
  index: number;
  count: number;
  grpcAddress: string;
  engine: 'factorized' | 'int8' | 'resident' | 'yoco' | 'reference';
  int8MinRows: number;
  int8Simd: 'auto' | 'relaxed' | 'simd128';
  kernelThreads: number;
  ortThreads: number;
  searchMaxBatch: number;
  searchMaxDelayMs: number;
  executionProviders: string[];
  modelId: string;
  searchMaxQueue: number;
  streamMaxInflight: number;
  serverMaxInflight: number;
  maxTemplates: number;
  compactFraction: number;
  compactMinDead: number;
  followBlockMs: number;
  maxChangeAttempts: number;
  topologyPollMs: number;
  epochRetireMs: number;
}

/** In a StatefulSet the pod is named <set>-<ordinal>: the ordinal is the shard index. */
function ordinalFromHostname(): number {
  const m = /-(\d+)$/.exec(hostname());
  if (!m) throw new Error('SHARD_INDEX is not set and the hostname has no -<ordinal> suffix');
  return Number(m[1]);
}

export const SHARD_ENV: EnvSpec<ShardConfig> = {
  ...HEAD_ENV,
  index: { name: 'SHARD_INDEX', default: ordinalFromHostname, parse: parse.int(0, 4095), doc: 'this shard index (default: the StatefulSet ordinal in the hostname)' },
  count: { name: 'SHARD_COUNT', default: 1, parse: parse.int(1, 4096), doc: 'k written to the store when it has no topology yet (the first start); after that the topology in Redis is the truth, changed by `yoco reshard`' },
  ...REDIS_ENV,
  ...SERVICE_ENV,
  ...SERVER_SECURITY_ENV,
  ...SEAL_ENV,
  grpcAddress: grpcAddressEnv('127.0.0.1:50061', 'Shard'),
  engine: { name: 'SHARD_ENGINE', default: 'factorized', parse: parse.oneOf('factorized', 'int8', 'resident', 'yoco', 'reference'), doc: 'scoring engine: factorized (float32), int8 (a quarter of the bytes per scan, rescored from float32 so answers are the same), resident (the scan in ONNX Runtime with P kept in its sessions: for ORT_PROVIDERS=cuda), yoco, reference' },
  int8MinRows: { name: 'SHARD_INT8_MIN_ROWS', default: 8192, parse: parse.int(1024, 1 << 30), doc: 'int8 engine: below this many rows a query is scanned in float32 alone (faster there)' },
  int8Simd: { name: 'SHARD_INT8_SIMD', default: 'auto', parse: parse.oneOf('auto', 'relaxed', 'simd128'), doc: "int8 engine's kernel: auto (simd128: relaxed SIMD's coarser levels cost more in rescoring than they save), relaxed (on Node 20 turns on V8's experimental flag; refused unless its sums check out exact at start), simd128" },
  kernelThreads: { name: 'KERNEL_THREADS', default: 0, parse: parse.int(0, 256), doc: 'threads scanning P per query (0 = one per core)' },
  searchMaxBatch: { name: 'SEARCH_MAX_BATCH', default: 16, parse: parse.int(1, 256), doc: 'concurrent queries scanned in one pass over the slice' },
  searchMaxDelayMs: { name: 'SEARCH_MAX_DELAY_MS', default: 0, parse: parse.int(0, 1000), doc: 'longest a query waits for others (0: batch only what queued while the last pass ran)' },
  ortThreads: { name: 'ORT_THREADS', default: 0, parse: parse.int(0, 256), doc: 'ONNX Runtime intra-op threads (0 = one per core)' },
  executionProviders: { name: 'ORT_PROVIDERS', default: [], parse: parse.list, doc: 'ONNX Runtime execution providers, e.g. cuda,cpu' },
  modelId: { name: 'YOCO_MODEL_ID', default: 'vectors', parse: parse.string, doc: 'embedding model the vectors come from (reported in status)' },
  searchMaxQueue: { name: 'SEARCH_MAX_QUEUE', default: 2048, parse: parse.int(1, 1_000_000), doc: 'queries waiting to be scanned; one more gets RESOURCE_EXHAUSTED' },
  streamMaxInflight: { name: 'STREAM_MAX_INFLIGHT', default: 512, parse: parse.int(1, 1_000_000), doc: 'Search calls one SearchStream may have in flight' },
  serverMaxInflight: { name: 'SERVER_MAX_INFLIGHT', default: 2048, parse: parse.int(1, 1_000_000), doc: 'Search calls all SearchStreams may have in flight together' },
  maxTemplates: { name: 'SHARD_MAX_TEMPLATES', default: 0, parse: parse.int(0, 1_000_000_000), doc: 'rows the shard holds at most (0: what the engine can hold)' },
  compactFraction: { name: 'COMPACT_DEAD_FRACTION', default: 0.25, parse: parse.number(0, 1), doc: 'compact once dead rows pass this fraction of rows' },
  compactMinDead: { name: 'COMPACT_MIN_DEAD', default: 1024, parse: parse.int(1, 1_000_000_000), doc: '... and at least this many' },
  followBlockMs: { name: 'FOLLOW_BLOCK_MS', default: 1000, parse: parse.int(10, 60_000), doc: 'longest one read of the change stream waits; the stream is checked for lost changes as often' },
  maxChangeAttempts: { name: 'MAX_CHANGE_ATTEMPTS', default: 5, parse: parse.int(1, 1000), doc: 'attempts at a change before the shard reloads instead' },
  topologyPollMs: { name: 'TOPOLOGY_POLL_MS', default: 500, parse: parse.int(10, 60_000), doc: 'how often the topology is read from the store' },
  epochRetireMs: { name: 'EPOCH_RETIRE_MS', default: 10_000, parse: parse.int(0, 3_600_000), doc: 'how long slots of the epoch before a switch are kept (coordinators that have not seen the switch yet still ask it); longer than every coordinator\'s SHARD_REFRESH_MS' },
};

export function readShardConfig(env: NodeJS.ProcessEnv = process.env): ShardConfig {
  const c = readEnv(SHARD_ENV, env);
  if (c.streamMaxInflight > c.serverMaxInflight) throw new Error(`STREAM_MAX_INFLIGHT ${c.streamMaxInflight} must not exceed SERVER_MAX_INFLIGHT ${c.serverMaxInflight}`);
  return c;
}
