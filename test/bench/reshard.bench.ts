/**
 * Resharding online: 50000 subjects (D=3840, H=512) on k=2 local shard
 * processes go to k=3 while a client identifies steadily. Reports the time
 * from Reshard to the switch and to the old slots dropped, each shard's
 * scorer memory before, at its peak during the change and after, and
 * Identify p50/p99 before, during and after, all in one run. Then a head
 * rollout over the same gallery: the time until the new head's rows serve.
 * `npm run bench:reshard` (`-- --subjects N` for another size).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { demoVector } from '@yoco/cli';
import { LocalCluster } from '@yoco/devkit';
import { f32leBytes, Rng } from '@yoco/common';
import { TopologyStore } from '@yoco/gallery';
import { headToOnnx, metricHead } from '@yoco/head';
import { unary, type v1 } from '@yoco/rpc';
import { benchStore, machineInfo, percentile, printTable, timeConcurrently } from './bench-util.js';

const { values } = parseArgs({ options: { subjects: { type: 'string', default: '50000' } } });
const SUBJECTS = Number(values.subjects);
const D = 3840;
const H = 512;
const log = (m: string) => process.stderr.write(`${m}\n`);

interface Phase {
  phase: string;
  calls: number;
  errors: number;
  p50_ms: number;
  p99_ms: number;
}

async function main(): Promise<void> {
  const bench = await benchStore('reshard', D);
  const { redisUrl, prefix, store, redis } = bench;
  const rng = new Rng(11);
  log(`writing ${SUBJECTS} subjects (D=${D}) to Redis`);
  const ids = Array.from({ length: SUBJECTS }, (_, i) => `emp-${String(i).padStart(6, '0')}`);
  const probes: { id: string; bytes: Buffer }[] = [];
  await timeConcurrently(ids.length, 32, async (i) => {
    const v = demoVector(rng, D);
    if (i % 500 === 0) probes.push({ id: ids[i], bytes: f32leBytes(v) });
    await store.put(ids[i], [v]);
  });
  const cluster = await LocalCluster.start({
    shards: 2,
    redisUrl,
    prefix,
    logDir: mkdtempSync(join(tmpdir(), 'yoco-bench-reshard-')),
    env: { YOCO_DIM: String(D), YOCO_HIDDEN: String(H), KERNEL_THREADS: '1', ORT_THREADS: '1' },
    coordinatorEnv: { HEDGE_DELAY_MS: '0' },
    shardEnv: () => ({ EPOCH_RETIRE_MS: '3000' }),
    followTopology: { pollMs: 200, onEvent: log },
    readyTimeoutMs: 600_000,
  });
  const client = cluster.matcherClient();
  const topology = new TopologyStore(redis, prefix);
  const memory = new Map<string, { before: number; peak: number; after: number }>();
  const sampleMemory = async (field: 'before' | 'peak' | 'after') => {
    const s = await unary(client, 'ClusterStatus', {}, { deadline: Date.now() + 5000 });
    for (const sh of s.shards) {
      for (const r of sh.replicas) {
        const key = `shard ${sh.index}`;
        const m = memory.get(key) ?? { before: 0, peak: 0, after: 0 };
        // Scorer rows only (P, H floats a row): the memory a change adds.
        const bytes = (Number(r.templates) + Number(r.deadRows)) * H * 4;
        if (field === 'peak') m.peak = Math.max(m.peak, bytes);
        else m[field] = bytes;
        memory.set(key, m);
      }
    }
  };
  let phase = 'before';
  const times = new Map<string, number[]>();
  const errors = new Map<string, number>();
  let running = true;
  let wrong = 0;
  const identify = async (worker: number) => {
    let n = worker;
    while (running) {
      const p = probes[n++ % probes.length];
      const t = performance.now();
      try {
        const res = await unary(client, 'Identify', { probe: { vector: { f32le: p.bytes } }, topK: 10 }, { deadline: Date.now() + 10_000 });
        (times.get(phase) ?? times.set(phase, []).get(phase)!).push(performance.now() - t);
        if (res.matches[0]?.subjectId !== p.id) wrong++;
      } catch {
        errors.set(phase, (errors.get(phase) ?? 0) + 1);
      }
    }
  };
  const rows: Phase[] = [];
  const results: Record<string, unknown> = {};
  try {
    await sampleMemory('before');
    const load = Promise.all([identify(0), identify(1)]);
    await new Promise((r) => setTimeout(r, 10_000));
    phase = 'during';
    const started = Date.now();
    await unary(client, 'Reshard', { shardCount: 3 }, { deadline: Date.now() + 10_000 });
    let switchedAt = 0;
    for (;;) {
      await sampleMemory('peak');
      const t = await topology.read();
      if (t && !t.next && t.k === 3) {
        switchedAt = t.switchedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    log(`switched after ${(switchedAt - started) / 1000} s`);
    phase = 'after';
    // Dropped: every replica holds only its own slots again (the rows of the three shards add up to the gallery).
    let droppedAt = 0;
    for (;;) {
      const s = await unary(client, 'ClusterStatus', {}, { deadline: Date.now() + 5000 });
      await sampleMemory('peak');
      const held = s.shards.reduce((sum, sh) => sum + Number(sh.replicas[0]?.templates ?? 0), 0);
      if (held === SUBJECTS) {
        droppedAt = Date.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 10_000));
    await sampleMemory('after');
    // A head rollout on k=3: every shard computes the new head's rows beside its own.
    phase = 'rollout';
    const onnx = headToOnnx(metricHead({ dim: D, hidden: H, tau: 0.9 }));
    const rolloutStarted = Date.now();
    const rolled = await unary(client, 'RolloutHead', { headOnnx: Buffer.from(onnx) }, { deadline: Date.now() + 60_000 });
    const rolloutEpoch = Number(rolled.topology!.next!.epoch);
    for (;;) {
      const t = await topology.read();
      if (t && !t.next && t.epoch === rolloutEpoch) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const rolloutS = (Date.now() - rolloutStarted) / 1000;
    log(`head rolled out after ${rolloutS} s`);
    phase = 'after rollout';
    await new Promise((r) => setTimeout(r, 5000));
    running = false;
    await load;
    for (const p of ['before', 'during', 'after', 'rollout', 'after rollout']) {
      const t = times.get(p) ?? [];
      rows.push({ phase: p, calls: t.length, errors: errors.get(p) ?? 0, p50_ms: percentile(t, 50), p99_ms: percentile(t, 99) });
    }
    Object.assign(results, {
      subjects: SUBJECTS,
      dim: D,
      hidden: H,
      reshard: '2 -> 3',
      switch_s: (switchedAt - started) / 1000,
      old_slots_dropped_s: (droppedAt - started) / 1000,
      epoch_retire_ms: 3000,
      wrong_top1: wrong,
      head_rollout_s: rolloutS,
      head_onnx_bytes: onnx.byteLength,
      identify: rows,
      scorer_rows_bytes: Object.fromEntries(memory),
    });
  } finally {
    running = false;
    await cluster.stop();
    await bench.cleanup();
  }
  printTable(['phase', 'calls', 'errors', 'p50 ms', 'p99 ms'], rows.map((r) => [r.phase, String(r.calls), String(r.errors), r.p50_ms.toFixed(2), r.p99_ms.toFixed(2)]));
  printTable(
    ['shard', 'rows MB before', 'peak during', 'after'],
    [...memory].map(([k, m]) => [k, (m.before / 1e6).toFixed(1), (m.peak / 1e6).toFixed(1), (m.after / 1e6).toFixed(1)]),
  );
  console.log(`switch after ${results.switch_s} s; old slots dropped after ${results.old_slots_dropped_s} s (EPOCH_RETIRE_MS 3000); head rollout (k=3) switched after ${results.head_rollout_s} s; wrong top-1: ${wrong}`);
  const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'reshard.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ machine: machineInfo(), ...results }, null, 2)}\n`);
}

await main();
