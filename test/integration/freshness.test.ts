import { startRedisServer, type RedisServerHandle, stopChild, type LocalCluster } from '@yoco/devkit';
import { rawUnary } from '../support/raw-unary.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { freePort, Rng } from '@yoco/common';

import { GalleryStore } from '@yoco/gallery';
import { metricHead } from '@yoco/head';
import { isServiceError, loadProtos, makeClient, Status, unary } from '@yoco/rpc';
import type * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUp, DIM, HEAD_ENV, HIDDEN, identify, startCluster, unitVector, writeGallery } from '../support/cluster.js';
import { connect, redisUrl, testPrefix } from '../support/redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let cluster: LocalCluster | undefined;
let ownRedis: RedisServerHandle | undefined;
const children: ChildProcess[] = [];
const clients: grpc.Client[] = [];
const prefixes: string[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(children.splice(0).map((c) => stopChild(c, 'SIGTERM')));
  await cleanUp(cluster, ownRedis, prefixes);
  cluster = undefined;
  ownRedis = undefined;
});

function shardClient(address: string): grpc.Client {
  const c = makeClient(loadProtos().Shard, address);
  clients.push(c);
  return c;
}

function matcherAt(address: string): grpc.Client {
  const c = makeClient(loadProtos().Matcher, address);
  clients.push(c);
  return c;
}

async function until<T>(fn: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A process of ours (a second coordinator, an extra shard) with the cluster's environment plus `env`. */
function spawnService(service: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [join(ROOT, `services/${service}/dist/main.js`)], { env: { ...process.env, ...HEAD_ENV, METRICS_ADDRESS: '127.0.0.1:0', ...env }, stdio: 'ignore' });
  children.push(child);
  return child;
}

async function code(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
    return { code: Status.OK, details: '' };
  } catch (err) {
    if (!isServiceError(err)) throw err;
    return { code: err.code, details: err.details };
  }
}

describe('lost changes', () => {
  it('a frozen shard whose missed changes were trimmed reloads on its own once it wakes, with no write to prompt it', async () => {
    const prefix = testPrefix('fresh-trim');
    prefixes.push(prefix);
    await writeGallery(prefix, 50, 31);
    cluster = await startCluster(prefix, { shards: 1, replicas: 1 });
    const shard = cluster.shards.get('shard-0a')!;
    cluster.signal('shard-0a', 'SIGSTOP');
    // 200 enrolments it never reads, then the stream is trimmed (as MAXLEN trimming does after a long pause).
    const more = await writeGallery(prefix, 200, 32);
    const redis = connect();
    await redis.xtrim(`${prefix}changes`, 'MAXLEN', 0);
    redis.disconnect();
    cluster.signal('shard-0a', 'SIGCONT');
    const client = shardClient(shard.address);
    const held = await until(async () => {
      const res = await rawUnary(client, 'ListTemplates', {}, { deadline: Date.now() + 2000 });
      const ids = new Set(res.templates.map((t: { subjectId: string }) => t.subjectId));
      return [...more.subjects.keys()].every((id) => ids.has(id)) ? ids : undefined;
    }, 15_000, 'the woken shard to hold the 200 subjects it missed');
    expect(held.size).toBe(250);
  });
});

describe('freshness is visible and has a policy', () => {
  it('with Redis gone, shards keep serving from memory and say how old their view is; STALE_POLICY=refuse turns that into UNAVAILABLE', async () => {
    ownRedis = await startRedisServer();
    const prefix = 'yoco:';
    const rng = new Rng(33);
    const metricsPort = await freePort();
    cluster = await startCluster(prefix, {
      shards: 1,
      replicas: 1,
      redisUrl: ownRedis.url,
      shardEnv: () => ({ METRICS_ADDRESS: `127.0.0.1:${metricsPort}` }),
    });
    const v = unitVector(rng);
    await rawUnary(cluster.matcherClient(), 'Enrol', { subjectId: 'fresh-1', probes: [{ vector: { values: Array.from(v) } }], wait: true }, { deadline: Date.now() + 10_000 });
    // A second coordinator over the same shard, refusing views older than 1.5 s.
    const strictAddress = `127.0.0.1:${await freePort()}`;
    spawnService('coordinator', {
      REDIS_URL: ownRedis.url,
      YOCO_PREFIX: prefix,
      GRPC_ADDRESS: strictAddress,
      SHARD_ADDRESSES: cluster.shards.get('shard-0a')!.address,
      SHARD_REFRESH_MS: '250',
      STALE_POLICY: 'refuse',
      MAX_STALENESS_MS: '1500',
    });
    const strict = matcherAt(strictAddress);
    const fresh = await until(() => identify(strict, v, { topK: 1 }), 20_000, 'the strict coordinator');
    expect(fresh.matches[0].subjectId).toBe('fresh-1');
    expect((fresh as unknown as { stalenessMs: number }).stalenessMs).toBeLessThan(1500);
    const lagWhile = async () => Number(/^yoco_shard_watermark_lag_seconds\{[^}]*\} (\S+)$/m.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())?.[1]);
    expect(await lagWhile()).toBeLessThan(1.5);

    await ownRedis.stop();
    ownRedis = undefined;
    await new Promise((r) => setTimeout(r, 3000));
    // serve (the default): answered from memory, and the answer says how old the view is.
    const served = (await identify(cluster.matcherClient(), v, { topK: 1 })) as unknown as { matches: { subjectId: string }[]; stalenessMs: number };
    expect(served.matches[0].subjectId).toBe('fresh-1');
    expect(served.stalenessMs).toBeGreaterThan(2500);
    // refuse: UNAVAILABLE, saying why.
    const refused = await code(identify(strict, v, { topK: 1 }));
    expect(refused.code).toBe(Status.UNAVAILABLE);
    expect(refused.details).toMatch(/stale: its view is \d+ ms old \(MAX_STALENESS_MS 1500\)/);
    // The lag metric does not read 0 when Redis cannot be read: it is the view's age.
    expect(await lagWhile()).toBeGreaterThan(2.5);
  });
});

describe('one head, one topology', () => {
  it("a replica with another head than the store's is not SERVING, is shown excluded with the reason, and never merged", async () => {
    const prefix = testPrefix('fresh-head');
    prefixes.push(prefix);
    const gallery = await writeGallery(prefix, 200, 34);
    // The cluster's head on record: what every shard of this test but one runs.
    const redis = new Redis(redisUrl());
    const good = metricHead({ dim: DIM, hidden: HIDDEN });
    await new GalleryStore(redis, { prefix, dim: DIM }).checkMeta(good.id);
    redis.disconnect();
    cluster = await startCluster(prefix, {
      shards: 1,
      replicas: 2,
      shardEnv: (_, replica): Record<string, string> => (replica === 1 ? { YOCO_HEAD_SEED: '2' } : {}),
      expectHealthy: () => 1,
    });
    const status = await until(async () => {
      const s = await rawUnary(cluster!.matcherClient(), 'ClusterStatus', {}, { deadline: Date.now() + 2000 });
      // Both replicas polled, and the cluster's head read from the store (the coordinator reads it on each refresh).
      return s.shards[0].replicas.length === 2 && s.headId === good.id && s.shards[0].replicas.every((r: any) => r.headId === good.id || /runs head/.test(r.excluded)) ? s : undefined;
    }, 10_000, "both replicas in ClusterStatus, and the cluster's head known");
    expect(status.headId).toBe(good.id);
    const bad = status.shards[0].replicas.find((r: any) => r.headId !== good.id);
    expect(bad.state).toBe('HEAD_MISMATCH');
    expect(bad.healthy).toBe(false);
    expect(bad.excluded).toMatch(new RegExp(`runs head ${bad.headId}, not the cluster's head ${good.id}`));
    // Every answer comes from the replica that runs the cluster's head.
    for (const [id, vectors] of [...gallery.subjects].slice(0, 40)) {
      const r = await identify(cluster.matcherClient(), vectors[0], { topK: 1 });
      expect(r.matches[0].subjectId).toBe(id);
      expect(r.matches[0].score).toBeGreaterThan(0.99);
    }
  });

  it("a Search names the shard index it means: another index refuses; k is the topology's, whatever other replicas say", async () => {
    const prefix = testPrefix('fresh-k');
    prefixes.push(prefix);
    const gallery = await writeGallery(prefix, 200, 35);
    cluster = await startCluster(prefix, { shards: 2, replicas: 1 });
    const s0 = shardClient(cluster.shards.get('shard-0a')!.address);
    const query = Array.from(unitVector(new Rng(36)));
    const wrong = await code(rawUnary(s0, 'Search', { queries: query, topK: 3, expectedShard: { index: 1 } }, { deadline: Date.now() + 5000 }));
    expect(wrong.code).toBe(Status.FAILED_PRECONDITION);
    expect(wrong.details).toMatch(/this is shard 0, not shard 1/);
    expect((await rawUnary(s0, 'Search', { queries: query, topK: 3, expectedShard: { index: 0 } }, { deadline: Date.now() + 5000 })).shardIndex).toBe(0);

    // Three replicas of a k=3 layout that never finish loading: they outnumber the two that serve, and must not change k
    // (the topology on record is the truth; their SHARD_COUNT only seeds a store without one).
    const extra: string[] = [];
    for (let i = 0; i < 3; i++) {
      const address = `127.0.0.1:${await freePort()}`;
      spawnService('shard', { REDIS_URL: redisUrl(), YOCO_PREFIX: prefix, GRPC_ADDRESS: address, SHARD_INDEX: String(i), SHARD_COUNT: '3', YOCO_FAILPOINTS: 'shard.load-delay-ms=600000' });
      extra.push(address);
    }
    const address = `127.0.0.1:${await freePort()}`;
    spawnService('coordinator', {
      REDIS_URL: redisUrl(),
      YOCO_PREFIX: prefix,
      GRPC_ADDRESS: address,
      SHARD_ADDRESSES: [...[...cluster.shards.values()].map((s) => s.address), ...extra].join(','),
      SHARD_REFRESH_MS: '200',
    });
    const matcher = matcherAt(address);
    // Wait until the coordinator has heard from all five.
    await until(async () => {
      const s = await rawUnary(matcher, 'ClusterStatus', {}, { deadline: Date.now() + 2000 });
      return s.shardCount === 2 && s.shards.filter((x: any) => x.index < 2).every((x: any) => x.healthy) ? s : undefined;
    }, 20_000, 'the coordinator to serve k=2');
    await new Promise((r) => setTimeout(r, 1000));
    const s = await rawUnary(matcher, 'ClusterStatus', {}, { deadline: Date.now() + 2000 });
    expect(s.shardCount).toBe(2);
    for (const [id, vectors] of [...gallery.subjects].slice(0, 20)) {
      expect((await identify(matcher, vectors[0], { topK: 1 })).matches[0].subjectId).toBe(id);
    }
  });
});
