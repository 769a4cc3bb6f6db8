import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@yoco/common';
import { type LocalCluster } from '@yoco/devkit';
import { GallerySlice, GalleryStore, shardOfSlot, slotOf, StoreKeys, TopologyStore, type Template, type Topology } from '@yoco/gallery';
import { createScorer, headToOnnx, metricHead, type Head } from '@yoco/head';
import { loadProtos, makeClient, unary, type v1 } from '@yoco/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIM, enrol, HIDDEN, identify, removeSubject, startCluster, unitVector, writeGallery } from '../support/cluster.js';
import { rawUnary } from '../support/raw-unary.js';
import { connect, flushPrefix, testPrefix } from '../support/redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const YOCO = join(ROOT, 'packages/cli/bin/yoco.js');
const prefix = testPrefix('reshard');
let cluster: LocalCluster;
const redis = connect();
const topologyStore = new TopologyStore(redis, prefix);
const events: string[] = [];

/** Subjects the test knows to be live (id -> vectors) and those it removed (id -> the removal's token). */
const live = new Map<string, Float32Array[]>();
const removed = new Map<string, string>();

beforeAll(async () => {
  const gallery = await writeGallery(prefix, 1500, 9);
  for (const [id, v] of gallery.subjects) live.set(id, v);
  cluster = await startCluster(prefix, {
    shards: 2,
    replicas: 2,
    // The shards of index 2 take 3 s before their first load: long enough to be killed while loading.
    shardEnv: (index) => ({ TOPOLOGY_POLL_MS: '100', EPOCH_RETIRE_MS: '1500', ...(index >= 2 ? { YOCO_FAILPOINTS: 'shard.load-delay-ms=3000' } : {}) }),
    followTopology: { onEvent: (m) => events.push(m), pollMs: 200 },
  });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await flushPrefix(redis, prefix);
  redis.disconnect();
});

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not after ${ms} ms (${events.join('; ')})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Steady traffic while the topology changes: exact probes of known subjects
 * (each answer: no subject twice, the probed one first), probes of removed
 * subjects carrying the removal's token (never returned), and a stream of
 * enrolments and removals (each found, or not found, at its own token).
 */
function traffic(client: v1.MatcherClient) {
  const violations: string[] = [];
  const errors: string[] = [];
  const counts = { identify: 0, enrolled: 0, removed: 0, removedProbes: 0 };
  let running = true;
  const rng = new Rng(77);
  const pick = () => {
    const ids = [...live.keys()];
    return ids[rng.int(ids.length)];
  };
  const check = (what: string, res: { matches: { subjectId: string }[] }, expectTop?: string, absent?: string) => {
    const ids = res.matches.map((m) => m.subjectId);
    if (new Set(ids).size !== ids.length) violations.push(`${what}: a subject twice: ${ids.join(',')}`);
    if (expectTop && ids[0] !== expectTop) violations.push(`${what}: top-1 ${ids[0]}, not ${expectTop}`);
    if (absent && ids.includes(absent)) violations.push(`${what}: removed ${absent} returned`);
  };
  // Every turn yields to the event loop: a call that fails at once must not starve the timers.
  const turn = () => new Promise((r) => setImmediate(r));
  const probes = async () => {
    while (running) {
      await turn();
      const id = pick();
      const vectors = live.get(id);
      if (!vectors) continue;
      try {
        const res = await identify(client as never, vectors[0], { topK: 5 });
        // Removed while the call ran: not a violation either way.
        if (live.has(id)) check(`identify ${id}`, res, id);
        counts.identify++;
      } catch (err) {
        errors.push(`identify: ${(err as Error).message}`);
      }
    }
  };
  const writes = async () => {
    let n = 0;
    while (running) {
      await turn();
      try {
        if (n % 3 === 2) {
          const id = pick();
          const vectors = live.get(id)!;
          live.delete(id);
          const { consistencyToken } = await removeSubject(client as never, id);
          removed.set(id, consistencyToken);
          const res = await identify(client as never, vectors[0], { topK: 5, consistencyToken });
          check(`after removing ${id}`, res, undefined, id);
          counts.removed++;
        } else {
          const id = `new-${n}`;
          const vectors = [unitVector(rng)];
          const { consistencyToken } = await enrol(client as never, id, vectors, { wait: true });
          const res = await identify(client as never, vectors[0], { topK: 5, consistencyToken });
          check(`after enrolling ${id}`, res, id);
          live.set(id, vectors);
          counts.enrolled++;
        }
        // An old removal's token still holds across the switch.
        const [old, token] = [...removed.entries()][rng.int(removed.size)] ?? [];
        if (old) {
          const res = await rawUnary(client as never, 'Identify', { probe: { vector: { values: [...unitVector(new Rng(1))] } }, topK: 50, consistencyToken: token }, { deadline: Date.now() + 10_000 });
          check(`removed ${old} at ${token}`, res, undefined, old);
          counts.removedProbes++;
        }
      } catch (err) {
        errors.push(`write: ${(err as Error).message}`);
      }
      n++;
    }
  };
  const all = Promise.all([probes(), probes(), probes(), writes()]);
  return {
    violations,
    errors,
    counts,
    stop: async () => {
      running = false;
      await all;
    },
  };
}

function yoco(...args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [YOCO, ...args, '--address', cluster.address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

/** Every replica holds exactly the live subjects whose slot its index owns at k (asked directly, by ListTemplates and Search). */
async function checkPlacement(k: number): Promise<void> {
  const store = new GalleryStore(redis, { prefix, dim: DIM });
  const inRedis = new Map<string, number>();
  for await (const batch of store.loadSlots(Array.from({ length: 1024 }, (_, i) => i))) for (const t of batch) inRedis.set(t.subjectId, shardOfSlot(slotOf(t.subjectId), k));
  for (const id of live.keys()) expect(inRedis.has(id), `${id} in Redis`).toBe(true);
  for (const id of removed.keys()) expect(inRedis.has(id), `${id} removed from Redis`).toBe(false);
  for (const shard of cluster.shards.values()) {
    expect(shard.index).toBeLessThan(k);
    const c = makeClient(loadProtos().Shard, shard.address);
    const want = [...inRedis].filter(([, i]) => i === shard.index).map(([id]) => id).sort();
    const held = await until(`${shard.name} holds only its slots`, async () => {
      const res = await unary(c, 'ListTemplates', {}, { deadline: Date.now() + 5000 });
      const ids = [...new Set(res.templates.map((t) => t.subjectId))].sort();
      return ids.length === want.length && ids;
    }, 20_000);
    expect(held, shard.name).toEqual(want);
    // Searched directly: its own subjects are found there.
    for (const id of want.filter((x) => live.has(x)).slice(0, 30)) {
      const r = await unary(c, 'Search', { queries: Array.from(live.get(id)![0]), topK: 1, expectedShard: { index: shard.index } }, { deadline: Date.now() + 5000 });
      expect(r.results[0].matches[0].subjectId, `${shard.name}: ${id}`).toBe(id);
    }
    c.close();
  }
}

describe('resharding online', () => {
  it('goes 2 -> 3 -> 2 under steady Identify, Enrol and Remove; a new shard killed while loading holds the switch back', async () => {
    const client = cluster.matcherClient();
    const load = traffic(client);
    try {
      await reshardUnderLoad(client);
    } finally {
      await load.stop();
    }
    console.log(`reshard under load: ${JSON.stringify(load.counts)}; ${load.errors.length} errors; events: ${events.join('; ')}`);
    expect(load.violations).toEqual([]);
    expect(load.errors).toEqual([]);
    expect(load.counts.identify).toBeGreaterThan(200);
    expect(load.counts.enrolled).toBeGreaterThan(10);
    expect(load.counts.removed).toBeGreaterThan(5);
    await checkPlacement(2);
  }, 240_000);

  async function reshardUnderLoad(client: v1.MatcherClient): Promise<void> {
    await new Promise((r) => setTimeout(r, 1000));
    const before = (await topologyStore.read())!;
    expect(before).toMatchObject({ k: 2 });

    // 2 -> 3. The launcher starts shard 2's replicas; both are killed while they load: the switch waits.
    const begun = await rawUnary<{ topology: v1.Topology__Output }>(client as never, 'Reshard', { shardCount: 3 });
    expect(begun.topology.next).toMatchObject({ shardCount: 3, epoch: before.epoch + 1 });
    const second = await rawUnary(client as never, 'Reshard', { shardCount: 4 }).catch((e: Error) => e);
    expect(String(second)).toMatch(/FAILED_PRECONDITION.*epoch \d+ \(k=3\) is in progress/);
    await until('shard 2 started', async () => cluster.shards.has('shard-2a') && cluster.shards.has('shard-2b'));
    await cluster.kill('shard-2a');
    await cluster.kill('shard-2b');
    const status = await yoco('status');
    expect(status.out).toMatch(/CHANGING to epoch \d+ \(k=3\)/);
    await new Promise((r) => setTimeout(r, 4000));
    expect((await topologyStore.read())!.next, 'the switch waits for shard 2').toBeDefined();
    expect((await topologyStore.read())!.epoch).toBe(before.epoch);
    cluster.restart('shard-2a');
    const switched = await until('switched to k=3', async () => {
      const t = await topologyStore.read();
      return t && !t.next && t.k === 3 && t;
    });
    expect(switched.epoch).toBe(before.epoch + 1);
    expect(switched.previous).toEqual({ epoch: before.epoch, k: 2 });
    cluster.restart('shard-2b');
    await new Promise((r) => setTimeout(r, 2500));

    // 3 -> 2 through the CLI, waiting: shard 2's replicas are stopped by the launcher once surplus.
    const shrink = await yoco('reshard', '--shards', '2', '--wait');
    expect(shrink.out).toMatch(/switched to epoch \d+ \(k=2\) after [\d.]+ s; shards beyond it released/);
    expect(shrink.code).toBe(0);
    await until('shard 2 stopped', async () => ![...cluster.shards.values()].some((s) => s.index === 2));
  }

  it('an aborted change leaves the serving epoch untouched, and its new shards stop', async () => {
    const client = cluster.matcherClient();
    const before = (await topologyStore.read()) as Topology;
    const probe = [...live.entries()][0];
    const begun = await rawUnary<{ topology: v1.Topology__Output }>(client as never, 'Reshard', { shardCount: 3 });
    await until('shard 2 started', async () => cluster.shards.has('shard-2a'));
    const aborted = await yoco('reshard', '--abort');
    expect(aborted.out).toContain(`aborted: epoch ${before.epoch} (k=2) serves, untouched`);
    const after = (await topologyStore.read())!;
    expect(after).toMatchObject({ epoch: before.epoch, k: 2, next: undefined });
    // The aborted epoch's number is spent: the next change gets a new one.
    expect(after.lastEpoch).toBe(Number(begun.topology.next!.epoch));
    expect((await identify(client as never, probe[1][0], { topK: 3 })).matches[0].subjectId).toBe(probe[0]);
    await until('shard 2 stopped after the abort', async () => ![...cluster.shards.values()].some((s) => s.index === 2));
    await expect(rawUnary(client as never, 'Reshard', { abort: true })).rejects.toThrow(/no change is in progress/);
    await checkPlacement(2);
    // The topology key is the store's: flushed with the prefix like the rest.
    expect(await redis.exists(new StoreKeys(prefix).topology)).toBe(1);
  }, 120_000);

  it('rolls out another head: rows recomputed beside the serving ones, no answer mixes two heads, and a restarted shard runs the new one', async () => {
    const client = cluster.matcherClient();
    const before = (await topologyStore.read())!;
    const status = await rawUnary(client as never, 'ClusterStatus', {}, { deadline: Date.now() + 5000 });
    const headA = metricHead({ dim: DIM, hidden: HIDDEN });
    expect(status.headId).toBe(headA.id);
    // Another head over the same vectors: a different distance scale, so its scores tell it apart.
    const headB = metricHead({ dim: DIM, hidden: HIDDEN, tau: 0.9 });
    const file = join(mkdtempSync(join(tmpdir(), 'yoco-head-')), 'head-b.onnx');
    writeFileSync(file, headToOnnx(headB));
    // Each head's own scores for what the store holds (not only what this file kept track of), computed here (float64 reference engine).
    const stored: Template[] = [];
    for await (const batch of new GalleryStore(redis, { prefix, dim: DIM }).loadSlots(Array.from({ length: 1024 }, (_, i) => i))) stored.push(...batch);
    const sliceOf = async (head: Head) => {
      const slice = new GallerySlice(await createScorer(head, { engine: 'reference' }));
      slice.add(stored);
      return slice;
    };
    const [refA, refB] = await Promise.all([sliceOf(headA), sliceOf(headB)]);
    const subjects = [...live.entries()];
    const seen = { A: 0, B: 0 };
    const violations: string[] = [];
    const errors: string[] = [];
    let running = true;
    const probeLoop = async (seed: number) => {
      const rng = new Rng(seed);
      while (running) {
        await new Promise((r) => setImmediate(r));
        const [, vectors] = subjects[rng.int(subjects.length)];
        const probe = vectors[0].map((x) => x + 0.3 * rng.normal() / Math.sqrt(DIM));
        try {
          const res = await identify(client as never, probe, { topK: 3 });
          const scores = await Promise.all(res.matches.map(async (m) => [m.score, (await refA.scoreSubject(m.subjectId, probe))?.score, (await refB.scoreSubject(m.subjectId, probe))?.score] as const));
          const byA = scores.every(([got, a]) => a !== undefined && Math.abs(got - a) < 2e-3);
          const byB = scores.every(([got, , b]) => b !== undefined && Math.abs(got - b) < 2e-3);
          // Both at once only where every score saturates alike (no way to tell): not counted either way.
          if (!byA && !byB) violations.push(`scores ${JSON.stringify(scores)} are not all of one head`);
          else if (byA !== byB) seen[byA ? 'A' : 'B']++;
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    };
    const load = Promise.all([probeLoop(1), probeLoop(2)]);
    try {
      await until('answers by the serving head', async () => seen.A >= 20);
      const rolled = await yoco('rollout-head', file, '--wait');
      expect(rolled.out).toMatch(new RegExp(`switched to epoch ${before.lastEpoch + 1} \\(k=2, head ${headB.id}\\)`));
      expect(rolled.code).toBe(0);
      await until('answers by the new head', async () => seen.B >= 20);
    } finally {
      running = false;
      await load;
    }
    console.log(`head rollout under load: ${JSON.stringify(seen)}; ${errors.length} errors, ${violations.length} violations`);
    expect(violations).toEqual([]);
    expect(errors).toEqual([]);
    expect(seen.A).toBeGreaterThanOrEqual(20);
    expect(seen.B).toBeGreaterThanOrEqual(20);
    const after = (await topologyStore.read())!;
    expect(after).toMatchObject({ epoch: before.lastEpoch + 1, k: 2, headId: headB.id, previous: { epoch: before.epoch, k: 2 } });
    // The store's meta names the new head; a shard restarted with the old settings loads it from the store.
    expect((await rawUnary(client as never, 'ClusterStatus', {}, { deadline: Date.now() + 5000 })).headId).toBe(headB.id);
    await cluster.kill('shard-0a');
    cluster.restart('shard-0a');
    const logFile = join(cluster.options.logDir, 'shard-0a.log');
    await until('shard-0a back on the new head', async () => {
      if (!readFileSync(logFile, 'utf8').includes("running the topology's head from the store")) return false;
      const s = await rawUnary(client as never, 'ClusterStatus', {}, { deadline: Date.now() + 5000 });
      const r = s.shards[0].replicas.find((x: { address: string }) => x.address === cluster.shards.get('shard-0a')!.address);
      return r?.healthy && r.state === 'SERVING' && r.headId === headB.id;
    });
    await cluster.kill('shard-0b');
    const [id, vectors] = subjects.find(([x]) => shardOfSlot(slotOf(x), 2) === 0)!;
    const res = await identify(client as never, vectors[0], { topK: 1 });
    expect(res.matches[0].subjectId).toBe(id);
    expect(Math.abs(res.matches[0].score - (await refB.scoreSubject(id, vectors[0]))!.score)).toBeLessThan(2e-3);
    cluster.restart('shard-0b');
    // A file that is not a head is refused with the reason.
    writeFileSync(file, 'not onnx');
    expect((await yoco('rollout-head', file)).out).toMatch(/INVALID_ARGUMENT: head_onnx is not a head this cluster can run/);
  }, 120_000);
});
