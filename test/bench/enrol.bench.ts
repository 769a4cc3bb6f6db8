/**
 * Enrolment through the real write path (Matcher.Enrol -> BullMQ -> enroller ->
 * Redis + change stream -> shards) on k=2 local shards over a gallery of 50000
 * subjects (D=3840): bulk throughput at concurrency 16, the Import lane (256
 * subjects per job), and the lag from "Enrol accepted" to "visible on every
 * replica of the owning shard". Each is measured twice on the same Redis (its
 * own, with an append-only file), side by side: appendfsync everysec, then
 * always (what `npm start` runs: an acknowledged write is on disk).
 * `npm run bench:enrol` (`-- --preload N --bulk N --lag N` to resize).
 */
import { rawUnary } from '../support/raw-unary.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bulkEnrol, demoVector, waitForJobs } from '@yoco/cli';
import { LocalCluster, startRedisServer } from '@yoco/devkit';
import { Rng } from '@yoco/common';
import { GalleryStore, shardOfSlot, slotOf } from '@yoco/gallery';
import { loadProtos, makeClient, unary } from '@yoco/rpc';
import type * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { machineInfo, percentile, printTable, timeConcurrently } from './bench-util.js';

const { values } = parseArgs({
  options: { preload: { type: 'string', default: '50000' }, bulk: { type: 'string', default: '2000' }, lag: { type: 'string', default: '200' } },
});
const PRELOAD = Number(values.preload);
const BULK = Number(values.bulk);
const LAG = Number(values.lag);
const K = 2;
const D = 3840;
const log = (m: string) => process.stderr.write(`${m}\n`);

type Row = { what: string; fsync: string; concurrency: number; value: number; unit: string; p50_ms?: number; p99_ms?: number };

/** One round of measurements under the Redis' current fsync policy; subject ids carry `tag` so rounds do not collide. */
async function measure(cluster: LocalCluster, fsync: string, rng: Rng): Promise<Row[]> {
  const rows: Row[] = [];
  const client = cluster.matcherClient();
  log(`[appendfsync ${fsync}] bulk: ${BULK} subjects by vector, concurrency 16`);
  const records = Array.from({ length: BULK }, (_, i) => ({ subjectId: `bulk-${fsync}-${i}`, vectors: [demoVector(rng, D)] }));
  const t0 = performance.now();
  const summary = await bulkEnrol(client, records, BULK, 16, 'bulk');
  const accepted = performance.now();
  const failed = await waitForJobs(client, summary.jobs);
  const applied = performance.now();
  if (summary.failed.length || failed.length) throw new Error(`bulk failures: ${JSON.stringify([...summary.failed, ...failed].slice(0, 3))}`);
  rows.push({ what: 'Enrol accepted (queued)', fsync, concurrency: 16, value: (BULK / (accepted - t0)) * 1000, unit: 'enrolments/s' });
  rows.push({ what: 'Enrol applied (stored + streamed)', fsync, concurrency: 16, value: (BULK / (applied - t0)) * 1000, unit: 'enrolments/s' });

  log(`[appendfsync ${fsync}] import: ${BULK} subjects, 256 per Import job, 4 calls in flight`);
  const t1 = performance.now();
  await timeConcurrently(Math.ceil(BULK / 256), 4, async (b) => {
    const subjects = Array.from({ length: Math.min(256, BULK - b * 256) }, (_, i) => {
      const v = demoVector(rng, D);
      return { subjectId: `import-${fsync}-${b * 256 + i}`, vectors: [{ f32le: Buffer.from(v.buffer, v.byteOffset, v.byteLength) }] };
    });
    const r = await rawUnary(client, 'Import', { subjects, wait: true }, { deadline: Date.now() + 120_000 });
    if (r.results.some((x: { outcome: string }) => x.outcome !== 'applied')) throw new Error('import did not apply every subject');
  });
  rows.push({ what: 'Import applied (256 per job)', fsync, concurrency: 4, value: (BULK / (performance.now() - t1)) * 1000, unit: 'subjects/s' });

  log(`[appendfsync ${fsync}] lag: ${LAG} enrolments, one at a time`);
  const replicas = new Map<number, grpc.Client[]>();
  for (const s of cluster.shards.values()) {
    const list = replicas.get(s.index) ?? [];
    list.push(makeClient(loadProtos().Shard, s.address));
    replicas.set(s.index, list);
  }
  const lags: number[] = [];
  for (let i = 0; i < LAG; i++) {
    const id = `lag-${fsync}-${i}`;
    const v = demoVector(rng, D);
    await rawUnary(client, 'Enrol', { subjectId: id, probes: [{ vector: { values: Array.from(v) } }] }, { deadline: Date.now() + 30_000 });
    const acceptedAt = performance.now();
    const owners = replicas.get(shardOfSlot(slotOf(id), K))!;
    await Promise.all(
      owners.map(async (shard) => {
        for (;;) {
          const r = await rawUnary(shard, 'ScoreSubject', { subjectId: id, query: Array.from(v) }, { deadline: Date.now() + 5000 });
          if (r.found) return;
        }
      }),
    );
    lags.push(performance.now() - acceptedAt);
  }
  for (const list of replicas.values()) for (const c of list) c.close();

  // What the consistency token is for: without it, an Identify sent the moment Enrol(wait) returns can reach a replica that has not applied the change yet.
  let missed = 0;
  for (let i = 0; i < 100; i++) {
    const id = `fresh-${fsync}-${i}`;
    const v = demoVector(rng, D);
    await rawUnary(client, 'Enrol', { subjectId: id, probes: [{ vector: { f32le: Buffer.from(v.buffer, v.byteOffset, v.byteLength) } }], wait: true }, { deadline: Date.now() + 30_000 });
    const r = await rawUnary(client, 'Identify', { probe: { vector: { f32le: Buffer.from(v.buffer, v.byteOffset, v.byteLength) } }, topK: 1 }, { deadline: Date.now() + 10_000 });
    if (r.matches[0]?.subjectId !== id) missed++;
  }
  rows.push({ what: 'Identify right after Enrol(wait), no token: missed the new subject', fsync, concurrency: 1, value: missed, unit: 'of 100' });
  rows.push({
    what: 'lag: Enrol accepted -> visible on every replica of its shard',
    fsync,
    concurrency: 1,
    value: percentile(lags, 50),
    unit: 'ms (p50)',
    p50_ms: percentile(lags, 50),
    p99_ms: percentile(lags, 99),
  });
  return rows;
}

async function main(): Promise<void> {
  // A Redis of its own with an append-only file, whatever REDIS_URL says: the fsync policy is what is measured.
  const dir = mkdtempSync(join(tmpdir(), 'yoco-bench-enrol-aof-'));
  const redisServer = await startRedisServer({ dir, appendonly: true, appendfsync: 'everysec' });
  const redis = new Redis(redisServer.url);
  const prefix = 'bench:enrol:';
  const store = new GalleryStore(redis, { prefix, dim: D });
  await store.checkMeta();
  const rng = new Rng(5);
  log(`preloading ${PRELOAD} subjects`);
  await timeConcurrently(PRELOAD, 32, (i) => store.put(`pre-${i}`, [demoVector(rng, D)]));
  const cluster = await LocalCluster.start({
    shards: K,
    redisUrl: redisServer.url,
    prefix,
    logDir: mkdtempSync(join(tmpdir(), 'yoco-bench-enrol-')),
    env: { YOCO_DIM: String(D) },
    readyTimeoutMs: 300_000,
  });
  const rows: Row[] = [];
  try {
    for (const fsync of ['everysec', 'always'] as const) {
      await redis.config('SET', 'appendfsync', fsync);
      rows.push(...(await measure(cluster, fsync, rng)));
    }
  } finally {
    await cluster.stop();
    redis.disconnect();
    await redisServer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const report = { machine: machineInfo(), preloaded_subjects: PRELOAD, k: K, d: D, bulk: BULK, lag_samples: LAG, results: rows };
  const file = fileURLToPath(new URL('./results/enrol.json', import.meta.url));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  printTable(
    ['what', 'appendfsync', 'concurrency', 'value', 'p50 ms', 'p99 ms'],
    rows.map((r) => [r.what, r.fsync, String(r.concurrency), `${r.value.toFixed(1)} ${r.unit}`, r.p50_ms?.toFixed(1) ?? '-', r.p99_ms?.toFixed(1) ?? '-']),
  );
  console.log(`wrote ${file}`);
}

await main();
