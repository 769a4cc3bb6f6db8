import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoVector } from '@yoco/cli';
import { LocalCluster } from '@yoco/devkit';
import { Rng } from '@yoco/common';
import { DIRECT_CLIENT_OPTIONS, loadProtos, makeClient, MultiplexedChannel, unary } from '@yoco/rpc';
import { benchStore, percentile, timeConcurrently } from '../test/bench/bench-util.js';
const D = 3840, H = 512, N = Number(process.argv[2] ?? 2000);
const bench = await benchStore('hops', D);
const rng = new Rng(7);
const ids = Array.from({ length: N }, (_, i) => `emp-${i}`);
const vecs = ids.map(() => demoVector(rng, D));
await timeConcurrently(N, 32, (i) => bench.store.put(ids[i], [vecs[i]]));
const prof = process.env.PROF_DIR;
const cluster = await LocalCluster.start({
  shards: 2, redisUrl: bench.redisUrl, prefix: bench.prefix, logDir: mkdtempSync(join(tmpdir(), 'yoco-hops-')),
  env: { YOCO_DIM: String(D), YOCO_HIDDEN: String(H), KERNEL_THREADS: '1', ORT_THREADS: '1' },
  coordinatorEnv: { HEDGE_DELAY_MS: '0', ...(prof ? { NODE_OPTIONS: `--import=/work/main/.scratch/prof-hook.mjs`, PROF_OUT: `${prof}/coordinator.cpuprofile` } : {}) },
  readyTimeoutMs: 300_000,
});
try {
  const client = makeClient(loadProtos().Matcher, cluster.address, DIRECT_CLIENT_OPTIONS);
  const stream = new MultiplexedChannel<object, unknown>(client, 'IdentifyStream');
  const bytes = vecs.slice(0, 64).map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  const run = (i: number) => stream.call({ probe: { vector: { f32le: bytes[i % 64] } }, topK: 10 }, { deadline: Date.now() + 30_000 });
  for (let i = 0; i < 100; i++) await run(i);
  if (prof) cluster.coordinator!.process.kill('SIGUSR1');
  const { times } = await timeConcurrently(1000, 1, run);
  if (prof) cluster.coordinator!.process.kill('SIGUSR2');
  await new Promise((r) => setTimeout(r, 1000));
  const status = await unary(client, 'ClusterStatus', {});
  const search = Math.max(...status.shards.map((s) => s.searchP50Ms));
  const call = Math.max(...status.shards.map((s) => s.callP50Ms));
  console.log({ e2e_p50: percentile(times, 50), shard_search_p50: search, shard_call_p50: call, hops: percentile(times, 50) - search });
  stream.close(); client.close();
} finally {
  await cluster.stop();
  await bench.cleanup();
}
