import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as EmbedderProto } from './generated/embedder.js';
import type { ProtoGrpcType as MatcherProto } from './generated/matcher.js';
import type { ProtoGrpcType as ShardProto } from './generated/shard.js';

/** proto/ at the repository root: the public contract. */
export const PROTO_DIR = fileURLToPath(new URL('../../../proto', import.meta.url));
export const PROTO_FILES = ['yoco/v1/matcher.proto', 'yoco/v1/shard.proto', 'yoco/v1/embedder.proto'];

/** Field names in camelCase (scripts/gen-types.mjs generates the types with the same options), 64-bit integers as numbers, enums as strings, defaults filled in. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

type V1 = MatcherProto['yoco']['v1'] & ShardProto['yoco']['v1'] & EmbedderProto['yoco']['v1'];

/** The three services' client constructors, typed by the generated code (each also carries its `service` definition). */
export interface YocoProtos {
  packageDefinition: protoLoader.PackageDefinition;
  Matcher: V1['Matcher'];
  Shard: V1['Shard'];
  Embedder: V1['Embedder'];
}

let cached: YocoProtos | undefined;

export function loadProtos(): YocoProtos {
  if (cached) return cached;
  const packageDefinition = protoLoader.loadSync(PROTO_FILES, LOADER_OPTIONS);
  // The one place the loader's untyped tree meets the generated types (both come from the same files and options).
  const v1 = (grpc.loadPackageDefinition(packageDefinition) as unknown as { yoco: { v1: V1 } }).yoco.v1;
  cached = { packageDefinition, Matcher: v1.Matcher, Shard: v1.Shard, Embedder: v1.Embedder };
  return cached;
}

/** Fully qualified service names, as health checks and reflection know them. */
export const SERVICE_NAMES = {
  Matcher: 'yoco.v1.Matcher',
  Shard: 'yoco.v1.Shard',
  Embedder: 'yoco.v1.Embedder',
} as const;

/** Our protos plus grpc.health.v1, so reflection can describe the health service too. */
export function reflectionDefinition(): protoLoader.PackageDefinition {
  const require = createRequire(import.meta.url);
  const healthDir = join(dirname(require.resolve('grpc-health-check/package.json')), 'proto');
  const health = protoLoader.loadSync('health/v1/health.proto', { ...LOADER_OPTIONS, includeDirs: [healthDir] });
  return { ...loadProtos().packageDefinition, ...health };
}
