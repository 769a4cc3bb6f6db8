import { startRedisServer, type RedisServerHandle, type LocalCluster } from '@yoco/devkit';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@yoco/common';

import { GalleryStore, ownedSlots } from '@yoco/gallery';
import { loadProtos, makeClient, unary } from '@yoco/rpc';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUp, DIM, enrol, identify, jobDone, startCluster, unitVector } from '../support/cluster.js';
import { connect, testPrefix } from '../support/redis.js';

let cluster: LocalCluster | undefined;
let ownRedis: RedisServerHandle | undefined;
const prefixes: string[] = [];

afterEach(async () => {
  await cleanUp(cluster, ownRedis, prefixes);
  cluster = undefined;
  ownRedis = undefined;
});

/** Enrols `n` subjects without waiting, `parallel` at a time; `during(i)` runs before subject i. */
async function enrolMany(client: any, n: number, seed: number, during: (i: number) => Promise<void> = async () => {}) {
  const rng = new Rng(seed);
  const subjects = Array.from({ length: n }, (_, i) => ({ id: `m${seed}-${i}`, vectors: Array.from({ length: 1 + (i % 2) }, () => unitVector(rng)) }));
  const jobs: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < subjects.length) {
        const i = next++;
        await during(i);
        jobs.push((await enrol(client, subjects[i].id, subjects[i].vectors)).jobId);
      }
    }),
  );
  return { subjects, jobs };
}

describe('faults on the write path', () => {
  it('a shard killed and restarted in the middle of 500 enrolments ends equal to Redis', async () => {
    const prefix = testPrefix('wf-shard');
    prefixes.push(prefix);
    cluster = await startCluster(prefix, { shards: 2, replicas: 1 });
    const c = cluster;
    const client = c.matcherClient();
    const { subjects, jobs } = await enrolMany(client, 500, 1, async (i) => {
      if (i === 150) await c.kill('shard-0a');
      if (i === 320) c.restart('shard-0a');
    });
    for (const j of jobs) await jobDone(client, j);
    await c.waitReady();
    // Ids: the shard's slice equals what Redis holds for its slots, nothing lost, nothing duplicated.
    const redis = connect();
    const store = new GalleryStore(redis, { prefix, dim: DIM });
    const inRedis: string[] = [];
    for await (const batch of store.loadSlots(ownedSlots(0, 2))) inRedis.push(...batch.map((t) => `${t.subjectId}/${t.templateId}`));
    const shard = makeClient(loadProtos().Shard, c.shards.get('shard-0a')!.address);
    let held: string[] = [];
    for (let i = 0; i < 100; i++) {
      const res = await unary(shard, 'ListTemplates', {}, { deadline: Date.now() + 5000 });
      held = res.templates.map((t: any) => `${t.subjectId}/${t.templateId}`);
      if (held.length === inRedis.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(held.sort()).toEqual(inRedis.sort());
    expect(new Set(held).size).toBe(held.length);
    const expected = subjects.reduce((n, s) => n + s.vectors.length, 0);
    expect(await store.countTemplates()).toBe(expected);
    // Vectors: each subject's own template scores as itself through the restarted shard.
    const ownedBy0 = new Set(inRedis.map((x) => x.split('/')[0]));
    for (const s of subjects.filter((s) => ownedBy0.has(s.id)).slice(0, 60)) {
      const v = await unary(client, 'Verify', { subjectId: s.id, probe: { vector: { values: Array.from(s.vectors[0]) } } }, { deadline: Date.now() + 5000 });
      expect(v.score).toBeGreaterThan(0.99);
    }
    shard.close();
    redis.disconnect();
  });

  it('the enroller killed in the middle of a bulk enrolment: every accepted job completes exactly once in effect', async () => {
    const prefix = testPrefix('wf-enroller');
    prefixes.push(prefix);
    cluster = await startCluster(prefix, { shards: 2, replicas: 1, enrollerEnv: { ENROLLER_CONCURRENCY: '4' } });
    const c = cluster;
    const client = c.matcherClient();
    const { subjects, jobs } = await enrolMany(client, 300, 2, async (i) => {
      if (i === 100) await c.kill('enroller');
      if (i === 200) c.startEnroller();
    });
    for (const j of jobs) await jobDone(client, j, 120_000);
    const redis = connect();
    const store = new GalleryStore(redis, { prefix, dim: DIM });
    for (const s of subjects) {
      const ids = await store.templateIds(s.id);
      expect(ids.length, s.id).toBe(s.vectors.length);
    }
    expect(await store.countTemplates()).toBe(subjects.reduce((n, s) => n + s.vectors.length, 0));
    const status = await unary(client, 'ClusterStatus', {}, { deadline: Date.now() + 5000 });
    expect(status.failedJobs).toBe(0);
    redis.disconnect();
  });

  it('an enroller that dies between applying a job and completing it: the retry completes it, once in effect', async () => {
    const prefix = testPrefix('wf-crash');
    prefixes.push(prefix);
    cluster = await startCluster(prefix, { shards: 1, replicas: 1, enrollerEnv: { YOCO_FAILPOINTS: 'enroller.crash-after-apply=crash-me' } });
    const client = cluster.matcherClient();
    const rng = new Rng(4);
    const v = unitVector(rng);
    const { jobId, templateIds } = await enrol(client, 'crash-me', [v, unitVector(rng)]);
    await new Promise<void>((resolve) => cluster!.enroller!.process.once('exit', () => resolve()));
    expect(cluster.enroller!.process.exitCode).toBe(3);
    // The write is in Redis, the job is not completed; a fresh enroller (without the crash flag) picks it up.
    cluster.options.enrollerEnv = {};
    cluster.startEnroller();
    const done = await jobDone(client, jobId, 60_000);
    const redis = connect();
    const store = new GalleryStore(redis, { prefix, dim: DIM });
    expect(await store.templateIds('crash-me')).toEqual([...templateIds].sort());
    expect((await identify(client, v, { topK: 1, consistencyToken: done.consistencyToken })).matches[0].subjectId).toBe('crash-me');
    redis.disconnect();
  });

  it('Redis stopped: Identify answers from memory, Enrol fails fast saying nothing was accepted; back with its AOF: nothing completed is lost, writes work again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'yoco-aof-'));
    ownRedis = await startRedisServer({ dir, appendonly: true, appendfsync: 'always' });
    const port = ownRedis.port;
    const prefix = 'yoco:';
    cluster = await startCluster(prefix, { shards: 2, replicas: 1, redisUrl: ownRedis.url });
    const client = cluster.matcherClient();
    const rng = new Rng(3);
    const done: { id: string; v: Float32Array }[] = [];
    for (let i = 0; i < 40; i++) {
      const v = unitVector(rng);
      await enrol(client, `aof-${i}`, [v], { wait: true });
      done.push({ id: `aof-${i}`, v });
    }
    await ownRedis.stop();
    ownRedis = undefined;

    const r = await identify(client, done[7].v, { topK: 1 });
    expect(r.matches[0].subjectId).toBe('aof-7');
    const t = Date.now();
    await expect(enrol(client, 'while-down', [unitVector(rng)], { wait: true })).rejects.toMatchObject({
      code: 14,
      details: expect.stringMatching(/not accepted: nothing was stored or queued/),
    });
    expect(Date.now() - t).toBeLessThan(3000);

    ownRedis = await startRedisServer({ dir, port, appendonly: true, appendfsync: 'always' });
    const redis = new Redis(ownRedis.url);
    const store = new GalleryStore(redis, { prefix, dim: DIM });
    for (const d of done) expect((await store.templateIds(d.id)).length, d.id).toBe(1);
    expect(await store.templateIds('while-down')).toEqual([]);
    // No service restarted: they reconnect on their own.
    let token = '';
    const v = unitVector(rng);
    for (let i = 0; i < 100 && !token; i++) {
      token = await enrol(client, 'after-restart', [v], { wait: true }).then((e) => e.consistencyToken, () => '');
      if (!token) await new Promise((r) => setTimeout(r, 200));
    }
    expect(token).not.toBe('');
    expect((await identify(client, v, { topK: 1, consistencyToken: token })).matches[0].subjectId).toBe('after-restart');
    redis.disconnect();
    await ownRedis.stop();
    ownRedis = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
});

