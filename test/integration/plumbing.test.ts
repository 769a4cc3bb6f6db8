import { childEnv, stopChild, type LocalCluster } from '@yoco/devkit';
import { rawUnary } from '../support/raw-unary.js';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { freePort, Rng } from '@yoco/common';

import { bindService, createLogger, loadProtos, makeClient, RpcServer, SERVICE_NAMES, ServiceMetrics, unary, type v1 } from '@yoco/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIM, HEAD_ENV, identify, startCluster, unitVector, writeGallery } from '../support/cluster.js';
import { connect, flushPrefix, redisUrl, testPrefix } from '../support/redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const prefix = testPrefix('plumbing');
let cluster: LocalCluster;

beforeAll(async () => {
  await writeGallery(prefix, 100, 4);
  cluster = await startCluster(prefix, { shards: 1, replicas: 2, shardEnv: (_, r): Record<string, string> => (r === 1 ? { YOCO_FAILPOINTS: 'shard.search-delay-ms=800' } : {}), coordinatorEnv: { HEDGE_DELAY_MS: '0' } });
});
afterAll(async () => {
  await cluster?.stop();
  const redis = connect();
  await flushPrefix(redis, prefix);
  redis.disconnect();
});

function reflectionClient(address: string): grpc.Client {
  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
    includeDirs: [`${ROOT}/node_modules/@grpc/reflection/build/proto`],
    keepCase: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as any;
  return new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
}

function listServices(address: string): Promise<string[]> {
  const client = reflectionClient(address) as any;
  return new Promise((resolve, reject) => {
    const stream = client.ServerReflectionInfo();
    stream.on('data', (res: any) => {
      resolve(res.list_services_response.service.map((s: any) => s.name).sort());
      stream.end();
      client.close();
    });
    stream.on('error', reject);
    stream.write({ list_services: '' });
  });
}

function healthCheck(address: string, service: string): Promise<string> {
  const def = protoLoader.loadSync('health/v1/health.proto', { includeDirs: [`${ROOT}/node_modules/grpc-health-check/proto`], enums: String });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const client = new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  return rawUnary(client, 'Check', { service }, { deadline: Date.now() + 5000 }).then((r) => {
    client.close();
    return r.status;
  });
}

describe('every service serves grpc.health.v1 and reflection', () => {
  it('coordinator and shard list their services and report SERVING', async () => {
    const shard = cluster.shards.get('shard-0a')!.address;
    expect(await listServices(cluster.address)).toEqual(['grpc.health.v1.Health', 'yoco.v1.Matcher']);
    expect(await listServices(shard)).toEqual(['grpc.health.v1.Health', 'yoco.v1.Shard']);
    expect(await healthCheck(cluster.address, 'yoco.v1.Matcher')).toBe('SERVING');
    expect(await healthCheck(shard, '')).toBe('SERVING');
    expect(await healthCheck(shard, 'yoco.v1.Shard')).toBe('SERVING');
  });
});

describe('a shard still loading', () => {
  it('answers Search with UNAVAILABLE (loading) and health NOT_SERVING, then serves', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const child = spawn(process.execPath, [`${ROOT}/services/shard/dist/main.js`], {
      env: { ...process.env, ...HEAD_ENV, REDIS_URL: redisUrl(), YOCO_PREFIX: prefix, SHARD_INDEX: '0', GRPC_ADDRESS: address, METRICS_ADDRESS: '127.0.0.1:0', YOCO_FAILPOINTS: 'shard.load-delay-ms=3000' },
      stdio: 'ignore',
    });
    try {
      const client = makeClient(loadProtos().Shard, address);
      const search = () => rawUnary(client, 'Search', { queries: Array.from(unitVector(new Rng(3))), topK: 3 }, { deadline: Date.now() + 2000 });
      let err: any;
      // Until the process is up the connection is refused; then, for 3 s, it says it is loading.
      for (const until = Date.now() + 15_000; Date.now() < until && !err; ) {
        err = await search().then(() => undefined, (e) => (e.code === grpc.status.UNAVAILABLE && /loading/.test(e.details) ? e : undefined));
        if (!err) await new Promise((r) => setTimeout(r, 20));
      }
      expect(err?.details).toBe('shard 0 is loading its slots');
      expect(await healthCheck(address, 'yoco.v1.Shard')).toBe('NOT_SERVING');
      let res: any;
      for (let i = 0; i < 100 && !res; i++) {
        res = await search().catch(() => undefined);
        if (!res) await new Promise((r) => setTimeout(r, 50));
      }
      expect(res.results[0].matches).toHaveLength(3);
      expect(await healthCheck(address, 'yoco.v1.Shard')).toBe('SERVING');
      client.close();
    } finally {
      await stopChild(child, 'SIGTERM');
    }
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM lets an in-flight Search finish, then the shard exits 0', async () => {
    const slow = cluster.shards.get('shard-0b')!;
    const client = makeClient(loadProtos().Shard, slow.address);
    const pending = rawUnary(client, 'Search', { queries: Array.from(unitVector(new Rng(1))), topK: 3 }, { deadline: Date.now() + 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise<number | null>((resolve) => slow.process.once('exit', (code) => resolve(code)));
    slow.process.kill('SIGTERM');
    const res = await pending;
    expect(res.results[0].matches).toHaveLength(3);
    expect(await exited).toBe(0);
    client.close();
    // The coordinator keeps answering from the other replica.
    expect((await identify(cluster.matcherClient(), unitVector(new Rng(2)))).matches).toHaveLength(10);
  });
});

describe('configuration is validated at start', () => {
  const run = (script: string, env: Record<string, string>) =>
    spawnSync(process.execPath, [`${ROOT}/services/${script}/dist/main.js`], { env: { ...process.env, ...HEAD_ENV, ...env }, encoding: 'utf8', timeout: 20_000 });

  it('a bad value stops the process with a message naming the variable', () => {
    for (const [script, env, variable] of [
      ['shard', { SHARD_INDEX: '0', SHARD_COUNT: 'two' }, 'SHARD_COUNT'],
      ['shard', { SHARD_INDEX: '5000', SHARD_COUNT: '2' }, 'SHARD_INDEX'],
      ['shard', { SHARD_INDEX: '0', SHARD_ENGINE: 'fast' }, 'SHARD_ENGINE'],
      ['coordinator', { SHARD_ADDRESSES: 'nohostport' }, 'SHARD_ADDRESSES'],
      ['coordinator', { SHARD_ADDRESSES: '127.0.0.1:1', DEFAULT_THRESHOLD: '2' }, 'DEFAULT_THRESHOLD'],
      ['coordinator', {}, 'SHARD_ADDRESSES'],
      // Plaintext beyond loopback is refused unless asked for; half a TLS config is refused.
      ['shard', { SHARD_INDEX: '0', GRPC_ADDRESS: '0.0.0.0:0', METRICS_ADDRESS: '127.0.0.1:0' }, 'ALLOW_INSECURE=1'],
      ['coordinator', { SHARD_ADDRESSES: '127.0.0.1:1', GRPC_ADDRESS: '0.0.0.0:0', METRICS_ADDRESS: '127.0.0.1:0' }, 'ALLOW_INSECURE=1'],
      ['shard', { SHARD_INDEX: '0', TLS_CERT_FILE: '/nonexistent.crt', METRICS_ADDRESS: '127.0.0.1:0' }, 'TLS_KEY_FILE'],
      ['shard', { SHARD_INDEX: '0', TLS_PEER_NAMES: 'coordinator.yoco', METRICS_ADDRESS: '127.0.0.1:0' }, 'TLS_CLIENT_CA_FILE'],
    ] as const) {
      const r = run(script, { ...env, REDIS_URL: redisUrl() });
      expect(r.status, `${script} ${JSON.stringify(env)}`).toBe(1);
      expect(r.stdout + r.stderr).toContain(variable);
    }
  });

  it('a shard asked for a GPU provider it cannot run on refuses to start, saying so (no silent CPU)', () => {
    const r = run('shard', { SHARD_INDEX: '0', ORT_PROVIDERS: 'cuda,cpu', REDIS_URL: redisUrl(), YOCO_PREFIX: `${prefix}-provider`, GRPC_ADDRESS: '127.0.0.1:0', METRICS_ADDRESS: '127.0.0.1:0' });
    expect(r.status).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/ORT_PROVIDERS asks for cuda, (which this onnxruntime-node cannot load|but ONNX Runtime fell back)/);
  });

  it('so does an embedder (it fell back to the CPU silently before)', () => {
    const r = run('embedder', { ORT_PROVIDERS: 'cuda,cpu', GRPC_ADDRESS: '127.0.0.1:0', METRICS_ADDRESS: '127.0.0.1:0' });
    expect(r.status).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/ORT_PROVIDERS asks for cuda, (which this onnxruntime-node cannot load|but ONNX Runtime fell back)/);
  });

  it("a coordinator whose embedder's model does not fit the shards' head refuses to start", async () => {
    // The one process that sees both: the model's width comes from the embedder, the head's from the shards.
    const embedder = new RpcServer({
      address: '127.0.0.1:0',
      logger: createLogger('fake-embedder'),
      metrics: new ServiceMetrics('fake_embedder'),
      services: [
        bindService<v1.EmbedderHandlers>(
          SERVICE_NAMES.Embedder,
          loadProtos().Embedder.service,
          { Info: async () => ({ modelId: 'face-resnet128:000000000000', dim: 2 * DIM, profile: 'face-resnet128' }), Embed: async () => ({ embeddings: [] }) },
          {},
        ),
      ],
    });
    const port = await embedder.start();
    embedder.setServing(true);
    try {
      const env = { REDIS_URL: redisUrl(), YOCO_PREFIX: prefix, SHARD_ADDRESSES: cluster.shards.get('shard-0a')!.address, EMBEDDER_ADDRESS: `127.0.0.1:${port}`, GRPC_ADDRESS: '127.0.0.1:0', METRICS_ADDRESS: '127.0.0.1:0' };
      const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [`${ROOT}/services/coordinator/dist/main.js`], { env: { ...process.env, ...env } });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.on('exit', (code) => {
          clearTimeout(timer);
          resolve({ code, out });
        });
      });
      expect(r.code).toBe(1);
      expect(r.out).toContain(`face-resnet128:000000000000 gives ${2 * DIM}-wide vectors but the shards' head takes ${DIM}`);
    } finally {
      await embedder.shutdown(0);
    }
  });

  it('--check-config: with what the launcher gives it, each service prints its resolved config, secrets masked; else every problem, one a line', () => {
    const check = (script: string, env: Record<string, string | undefined>) =>
      spawnSync(process.execPath, [script, '--check-config'], { env: childEnv(script, { PATH: process.env.PATH, ...env }), encoding: 'utf8', timeout: 20_000 });
    for (const p of [...cluster.shards.values(), cluster.coordinator, cluster.enroller!]) {
      const r = check(p.script, { ...p.env, REDIS_URL: 'redis://:hunter2@127.0.0.1:6379' });
      expect(r.status, `${p.name}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('REDIS_URL=redis://:***@127.0.0.1:6379');
      expect(r.stdout).not.toContain('hunter2');
      expect(r.stdout).toMatch(/^METRICS_ADDRESS=/m);
    }
    const shard = cluster.shards.get('shard-0a')!;
    const bad = check(shard.script, { ...shard.env, SHARD_COUNT: 'two', SHARD_ENGINE: 'fast', YOCO_HIDEN: '8', TLS_CERT_FILE: '' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([
      "shard: SHARD_COUNT: expected an integer (got 'two')",
      "shard: SHARD_ENGINE: expected one of factorized, int8, resident, yoco, reference (got 'fast')",
      'shard: YOCO_HIDEN: not a setting of this service (a typo?)',
    ]);
    expect(bad.stderr).not.toMatch(/\bat \S+ \(/); // never a stack trace
    // The head's settings are the shards' alone: the coordinator takes them for typos.
    const coordinator = check(cluster.coordinator.script, { ...cluster.coordinator.env, YOCO_DIM: '64' });
    expect(coordinator.status).toBe(0);
  });

  it('a shard whose head does not match the store refuses to start', async () => {
    const port = await freePort();
    const r = spawnSync(process.execPath, [`${ROOT}/services/shard/dist/main.js`], {
      env: { ...process.env, REDIS_URL: redisUrl(), YOCO_PREFIX: prefix, SHARD_INDEX: '0', YOCO_DIM: String(DIM * 2), YOCO_HIDDEN: '8', GRPC_ADDRESS: `127.0.0.1:${port}`, METRICS_ADDRESS: '127.0.0.1:0' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/holds 64-wide templates; this process is configured for 128/);
  });
});

