import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** proto/ at the repository root: the public contract. */
export const PROTO_DIR = fileURLToPath(new URL('../../../proto', import.meta.url));
export const PROTO_FILES = ['yoco/v1/matcher.proto', 'yoco/v1/shard.proto', 'yoco/v1/embedder.proto'];

/** Field names in camelCase, 64-bit integers as numbers, enums as strings, defaults filled in. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export interface YocoProtos {
  packageDefinition: protoLoader.PackageDefinition;
  Matcher: grpc.ServiceClientConstructor;
  Shard: grpc.ServiceClientConstructor;
  Embedder: grpc.ServiceClientConstructor;
}

let cached: YocoProtos | undefined;

export function loadProtos(): YocoProtos {
  if (cached) return cached;
  const packageDefinition = protoLoader.loadSync(PROTO_FILES, LOADER_OPTIONS);
  const root = grpc.loadPackageDefinition(packageDefinition) as unknown as {
    yoco: { v1: Record<'Matcher' | 'Shard' | 'Embedder', grpc.ServiceClientConstructor> };
  };
  const v1 = root.yoco.v1;
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
