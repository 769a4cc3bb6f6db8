import { Rng } from '@yoco/common';
import { type LocalCluster } from '@yoco/devkit';
import { connectRedis, GalleryStore } from '@yoco/gallery';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIM, enrol, identify, jobDone, startCluster, unitVector } from '../support/cluster.js';
import { rawUnary } from '../support/raw-unary.js';
import { testPrefix } from '../support/redis.js';

const prefix = testPrefix('ha');
let cluster: LocalCluster;

beforeAll(async () => {
  // Its own Redis: a primary, a replica and three sentinels (not the suite's Redis).
  cluster = await startCluster(prefix, { shards: 2, replicas: 1, redisUrl: undefined, redisHa: true });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('the store of record behind Sentinel', () => {
  it('the primary SIGKILLed under Enrol (wait) and Identify: Identify never fails, writes resume, and every acknowledged enrolment is there', async () => {
    const client = cluster.matcherClient();
    const rng = new Rng(12);
    const known = Array.from({ length: 20 }, (_, i) => [`ha-known-${i}`, unitVector(rng)] as const);
    for (const [id, v] of known) await enrol(client as never, id, [v], { wait: true });

    let running = true;
    const identifyErrors: string[] = [];
    let answers = 0;
    const probes = async (seed: number) => {
      const r = new Rng(seed);
      while (running) {
        const [id, v] = known[r.int(known.length)];
        try {
          const res = await identify(client as never, v, { topK: 3 });
          if (res.matches[0]?.subjectId !== id) identifyErrors.push(`top-1 ${res.matches[0]?.subjectId} for ${id}`);
          answers++;
        } catch (err) {
          identifyErrors.push((err as Error).message);
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    };
    const load = Promise.all([probes(1), probes(2)]);

    const acknowledged = new Map<string, Float32Array>();
    const burst: { id: string; v: Float32Array; jobId: string }[] = [];
    const refused: string[] = [];
    let killedAt = 0;
    let firstAfter = 0;
    let afterKill = 0;
    const started = Date.now();
    try {
      for (let i = 0; afterKill < 30 && Date.now() - started < 90_000; i++) {
        if (i === 30) {
          // A burst queued without waiting. The enroller is frozen once it has taken some of them, so jobs are
          // both running (taken, locked, mid-write) and waiting when the primary dies; it is let go after.
          const enroller = cluster.enroller!.process;
          let acked = 0;
          burst.push(...(await Promise.all(Array.from({ length: 100 }, async (_, j) => {
            const v = unitVector(rng);
            const e = await enrol(client as never, `ha-burst-${j}`, [v], { wait: false }, 10_000);
            if (++acked === 10) enroller.kill('SIGSTOP');
            return { id: `ha-burst-${j}`, v, jobId: e.jobId };
          }))));
          cluster.ha!.servers[0].process.kill('SIGKILL');
          killedAt = Date.now();
          enroller.kill('SIGCONT');
        }
        const id = `ha-${i}`;
        const v = unitVector(rng);
        try {
          await enrol(client as never, id, [v], { wait: true }, 10_000);
          acknowledged.set(id, v);
          if (killedAt) {
            afterKill++;
            firstAfter ||= Date.now();
          }
        } catch (err) {
          refused.push((err as Error).message.split(':').slice(0, 2).join(':'));
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      running = false;
      await load;
    }
    const failoverMs = firstAfter - killedAt;
    console.log(`redis failover: ${acknowledged.size} enrolments acknowledged (${afterKill} after the kill), ${refused.length} refused meanwhile (${[...new Set(refused)].join('; ')}); first accepted write ${failoverMs} ms after the kill; Identify ${answers} answers, ${identifyErrors.length} errors`);
    expect(killedAt).toBeGreaterThan(0);
    expect(afterKill, 'writes resume after the failover').toBe(30);
    expect(failoverMs).toBeLessThan(30_000);
    expect(identifyErrors.slice(0, 5)).toEqual([]);

    // Every acknowledged enrolment is on the new primary and found by its exact vector on the shards.
    const redis = connectRedis(cluster.redisUrl, 'tool');
    const store = new GalleryStore(redis, { prefix, dim: DIM });
    try {
      for (const [id, v] of acknowledged) {
        expect((await store.templateIds(id)).length, `${id} in Redis`).toBe(1);
        const res = await identify(client as never, v, { topK: 1 });
        expect(res.matches[0]?.subjectId, `${id} on the shards`).toBe(id);
      }
      expect((await redis.role())[0]).toBe('master');
      // Every job handed out before the kill ends completed, once in effect: its subject holds exactly the one
      // template, the job id still names that subject's job, and some of them were still to run at the kill.
      const ids = new Set<string>();
      let finishedAfter = 0;
      let retried = 0;
      for (const b of burst) {
        await jobDone(client as never, b.jobId, 60_000);
        const job = await rawUnary<{ subjectId: string; state: string; finishedMs: string; attempts: number; outcome: string }>(client as never, 'GetJob', { jobId: b.jobId }, { deadline: Date.now() + 5000 });
        expect(job).toMatchObject({ subjectId: b.id, state: 'completed', outcome: 'applied' });
        if (Number(job.finishedMs) > killedAt) finishedAfter++;
        if (job.attempts > 1) retried++;
        ids.add(b.jobId);
        expect(await store.templateIds(b.id), `${b.id} in Redis`).toHaveLength(1);
        expect((await identify(client as never, b.v, { topK: 1 })).matches[0]?.subjectId, `${b.id} on the shards`).toBe(b.id);
      }
      console.log(`queue across the failover: ${burst.length} jobs queued just before the kill, ${finishedAfter} finished after it (${retried} retried), all completed once`);
      expect(ids.size).toBe(burst.length);
      expect(finishedAfter).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
  }, 180_000);

  it('a failover that loses a tail the shards had read: the caller was never told it was applied, and the shards reload to equal the new primary', async () => {
    const client = cluster.matcherClient();
    const ha = cluster.ha!;
    const info = async (port: number) => {
      const r = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      try {
        return await r.info('replication');
      } finally {
        r.disconnect();
      }
    };
    const until = async (what: string, cond: () => Promise<boolean>, ms = 30_000) => {
      const end = Date.now() + ms;
      while (!(await cond().catch(() => false))) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    // After the first test: one primary and its replica, in sync.
    let primary = ha.servers[0];
    let replica = ha.servers[1];
    await until('a replica in sync', async () => {
      const roles = await Promise.all(ha.servers.map((s) => info(s.port)));
      const r = roles.findIndex((x) => x.includes('role:slave') && x.includes('master_link_status:up'));
      if (r < 0) return false;
      replica = ha.servers[r];
      primary = ha.servers[1 - r];
      return true;
    });
    // The replica loses its link and cannot get it back (it now authenticates as a user the primary does not
    // have): the primary goes on taking writes the replica never sees, as under a partition.
    const cut = new Redis(replica.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      await cut.config('SET', 'masteruser', 'nobody');
      await cut.config('SET', 'masterauth', 'nothing');
      await cut.client('KILL', 'TYPE', 'master');
      await until('the replica to lose its link', async () => (await info(replica.port)).includes('master_link_status:down'));
      const v = unitVector(new Rng(31));
      const outcome = await enrol(client as never, 'ha-lost', [v], { wait: true }, 5000).then(
        () => 'applied',
        (err: { code?: number; details?: string }) => `${err.code}: ${err.details}`,
      );
      // Not acknowledged: the caller hears that too few replicas have it.
      expect(outcome).toMatch(/^14: .*replica/);
      // But the primary had it, and the shards applied it from there.
      await until('the shards to hold the unreplicated write', async () => (await identify(client as never, v, { topK: 1 })).matches[0]?.subjectId === 'ha-lost');
      primary.process.kill('SIGKILL');
      const killedAt = Date.now();
      await until('the replica to be promoted', async () => (await info(replica.port)).includes('role:master'), 60_000);
      await cut.config('SET', 'masteruser', '');
      // The new primary never had 'ha-lost': every shard drops it (a reload), and serves what the new primary holds.
      await until('the shards to drop the lost write', async () => (await identify(client as never, v, { topK: 1 })).matches[0]?.subjectId !== 'ha-lost', 60_000);
      const droppedMs = Date.now() - killedAt;
      await expect(rawUnary(client as never, 'GetSubject', { subjectId: 'ha-lost' }, { deadline: Date.now() + 5000 })).rejects.toMatchObject({ code: 5 });
      const redis = connectRedis(cluster.redisUrl, 'tool');
      try {
        const store = new GalleryStore(redis, { prefix, dim: DIM });
        const held = await store.countTemplates();
        let served = -1;
        await until('the shards to hold exactly what the new primary holds', async () => {
          served = Number((await rawUnary<{ gallerySize: string }>(client as never, 'ClusterStatus', {}, { deadline: Date.now() + 5000 })).gallerySize);
          return served === held;
        });
        console.log(`lost tail: the unreplicated write was dropped by the shards ${droppedMs} ms after the kill; shards hold ${served} templates, as the new primary does`);
      } finally {
        redis.disconnect();
      }
    } finally {
      cut.disconnect();
    }
  }, 180_000);
});
