import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@yoco/common';
import type { LocalCluster } from '@yoco/devkit';
import { GalleryStore, ownedSlots } from '@yoco/gallery';
import { isServiceError, loadProtos, makeClient, Status, unary } from '@yoco/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIM, enrol, identify, removeSubject, startCluster, unitVector, writeGallery, type Gallery } from '../support/cluster.js';
import { connect, flushPrefix, testPrefix } from '../support/redis.js';

const prefix = testPrefix('chaos');
const RUN_MS = 40_000;
/** The events below are placed on a 60-second timeline, compressed to RUN_MS. */
const TIMELINE_MS = 60_000;
let cluster: LocalCluster;
let gallery: Gallery;

// hidden = 2D: the metric head measures distances exactly, and at tau 0.5 a random unit probe (at distance ~1.4
// from everyone) is never accepted, while a row scored from a half-built slice (b2 alone: 0.982) would be.
const CHAOS_HEAD = { YOCO_HIDDEN: String(2 * DIM), YOCO_HEAD_TAU: '0.5' };

beforeAll(async () => {
  gallery = await writeGallery(prefix, 1500, 61);
  cluster = await startCluster(prefix, { shards: 2, replicas: 2, env: CHAOS_HEAD });
});
afterAll(async () => {
  await cluster?.stop();
  const redis = connect();
  await flushPrefix(redis, prefix);
  redis.disconnect();
});

/** Calls may fail while replicas are frozen or dead (UNAVAILABLE, DEADLINE_EXCEEDED): never with a wrong answer. */
const tolerated = new Set<number>([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.RESOURCE_EXHAUSTED]);

describe('chaos: k=2 x 2 replicas for 40 s of frozen, killed and restarted replicas and a trimmed stream', () => {
  it('no random probe is accepted, no exact probe answered by another subject, no removed subject returned past its token, and every replica ends equal to Redis', async () => {
    const client = cluster.matcherClient();
    const stable = [...gallery.subjects];
    const until = Date.now() + RUN_MS;
    const stats = { exact: 0, random: 0, enrolled: 0, removed: 0, tolerated: 0 };
    const violations: string[] = [];
    const codes = new Map<string, number>();
    const note = (err: unknown, where: string) => {
      if (isServiceError(err) && tolerated.has(err.code)) {
        stats.tolerated++;
        const k = `${where}: ${Status[err.code]}`;
        codes.set(k, (codes.get(k) ?? 0) + 1);
        return;
      }
      violations.push(`${where}: ${(err as Error).message}`);
    };

    const exactProbes = async (seed: number) => {
      const rng = new Rng(seed);
      while (Date.now() < until) {
        const [id, vectors] = stable[rng.int(stable.length)];
        try {
          const r = await identify(client, vectors[rng.int(vectors.length)], { topK: 1 }, 5000);
          stats.exact++;
          if (r.matches[0]?.subjectId !== id) violations.push(`exact probe of ${id} answered by ${r.matches[0]?.subjectId}`);
        } catch (err) {
          note(err, 'exact');
        }
      }
    };
    const randomProbes = async (seed: number) => {
      const rng = new Rng(seed);
      while (Date.now() < until) {
        try {
          const r = await identify(client, unitVector(rng), { topK: 5 }, 5000);
          stats.random++;
          for (const m of r.matches) if (m.accepted) violations.push(`random probe accepted as ${m.subjectId} at ${m.score}`);
        } catch (err) {
          note(err, 'random');
        }
      }
    };
    const churn = async (seed: number) => {
      const rng = new Rng(seed);
      for (let i = 0; Date.now() < until; i++) {
        const id = `churn-${seed}-${i}`;
        const v = unitVector(rng);
        try {
          const e = await enrol(client, id, [v], { wait: true, requestId: `${id}:enrol` }, 20_000);
          stats.enrolled++;
          try {
            const found = await identify(client, v, { topK: 1, consistencyToken: e.consistencyToken }, 5000);
            if (found.matches[0]?.subjectId !== id) violations.push(`${id} not found with its enrolment token`);
          } catch (err) {
            note(err, 'read-your-write');
          }
          const r = await removeSubject(client, id, true, 20_000);
          stats.removed++;
          for (let k = 0; k < 3; k++) {
            try {
              const after = await identify(client, v, { topK: 20, consistencyToken: r.consistencyToken }, 5000);
              if (after.matches.some((m) => m.subjectId === id)) violations.push(`${id} returned after its removal token ${r.consistencyToken}`);
            } catch (err) {
              note(err, 'after-removal');
            }
          }
        } catch (err) {
          note(err, 'write');
        }
      }
    };

    const trim = async () => {
      const redis = connect();
      await redis.xtrim(`${prefix}changes`, 'MAXLEN', 0);
      redis.disconnect();
    };
    const at = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, until - RUN_MS + (ms * RUN_MS) / TIMELINE_MS - Date.now())));
    const chaos = async () => {
      await at(5_000);
      cluster.signal('shard-0a', 'SIGSTOP');
      await at(10_000);
      await trim();
      await at(14_000);
      cluster.signal('shard-0a', 'SIGCONT');
      await at(20_000);
      cluster.signal('shard-1b', 'SIGSTOP');
      await at(27_000);
      cluster.signal('shard-1b', 'SIGCONT');
      await at(31_000);
      await cluster.kill('shard-0b');
      await at(37_000);
      cluster.restart('shard-0b');
      await at(41_000);
      cluster.signal('shard-1a', 'SIGSTOP');
      await at(44_000);
      await trim();
      await at(47_000);
      cluster.signal('shard-1a', 'SIGCONT');
      await at(50_000);
      await cluster.kill('shard-1b');
      await at(54_000);
      cluster.restart('shard-1b');
    };

    await Promise.all([exactProbes(1), exactProbes(2), randomProbes(3), randomProbes(4), churn(5), churn(6), chaos()]);
    console.log(`chaos: ${JSON.stringify(stats)}; tolerated failures ${JSON.stringify(Object.fromEntries(codes))}; ${violations.length} violations`);
    expect(violations).toEqual([]);
    expect(stats.exact).toBeGreaterThan(500);
    expect(stats.random).toBeGreaterThan(200);
    expect(stats.removed).toBeGreaterThan(20);

    // The replicas frozen across a trim found out on their own that they had missed changes, and reloaded.
    for (const name of ['shard-0a', 'shard-1a']) {
      const log = readFileSync(join(cluster.options.logDir, `${name}.log`), 'utf8');
      expect(log, name).toMatch(/"event":"reload","reason":"lost changes/);
    }


    // The end: every replica back, each holding exactly what Redis holds for its slots.
    await cluster.waitReady(60_000);
    const redis = connect();
    const store = new GalleryStore(redis, { prefix, dim: DIM });
    for (const shard of cluster.shards.values()) {
      const inRedis: string[] = [];
      for await (const batch of store.loadSlots(ownedSlots(shard.index, 2))) inRedis.push(...batch.map((t) => `${t.subjectId}/${t.templateId}`));
      const c = makeClient(loadProtos().Shard, shard.address);
      let held: string[] = [];
      for (let i = 0; i < 100; i++) {
        const res = await unary(c, 'ListTemplates', {}, { deadline: Date.now() + 5000 }).catch(() => ({ templates: [] }));
        held = res.templates.map((t) => `${t.subjectId}/${t.templateId}`).sort();
        if (held.length === inRedis.length) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(held, shard.name).toEqual(inRedis.sort());
      // And searched directly, each of its live stable subjects is found first.
      const mine = stable.filter(([id]) => inRedis.some((x) => x.startsWith(`${id}/`))).slice(0, 100);
      for (const [id, vectors] of mine) {
        const r = await unary(c, 'Search', { queries: Array.from(vectors[0]), topK: 1, expectedShard: { index: shard.index } }, { deadline: Date.now() + 5000 });
        expect(r.results[0].matches[0].subjectId, `${shard.name}: ${id}`).toBe(id);
      }
      c.close();
    }
    redis.disconnect();
  });
});
