import { Rng } from '@yoco/common';
import { type LocalCluster } from '@yoco/devkit';
import { connectRedis, GalleryStore } from '@yoco/gallery';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIM, enrol, identify, startCluster, unitVector } from '../support/cluster.js';
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
    const refused: string[] = [];
    let killedAt = 0;
    let firstAfter = 0;
    let afterKill = 0;
    const started = Date.now();
    try {
      for (let i = 0; afterKill < 30 && Date.now() - started < 90_000; i++) {
        if (i === 30) {
          cluster.ha!.servers[0].process.kill('SIGKILL');
          killedAt = Date.now();
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
    } finally {
      redis.disconnect();
    }
  }, 180_000);
});
