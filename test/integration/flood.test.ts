import { type LocalCluster } from '@yoco/devkit';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { Status } from '@yoco/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identify, startCluster, writeGallery, type Gallery } from '../support/cluster.js';
import { connect, flushPrefix, testPrefix } from '../support/redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const prefix = testPrefix('flood');
/** What the coordinator or a shard may hold during a flood (the issue allows 2 GB; far less is needed). */
const RSS_BOUND_MB = 1024;
const FLOOD_CALLS = 20_000;
let cluster: LocalCluster;
let gallery: Gallery;

beforeAll(async () => {
  gallery = await writeGallery(prefix, 2000, 51);
  // Shard 0 caps a stream at 64 calls in flight (512 by default), and each of its Searches waits 20 ms first (a
  // fault point): the flood must have an excess to refuse, and at D = 64 a shard that scans at once keeps up with
  // a flooding caller whatever the cap (its calls never pile up). The coordinator's own stream to it has the same cap.
  cluster = await startCluster(prefix, {
    shards: 2,
    replicas: 1,
    shardEnv: (index): Record<string, string> => (index === 0 ? { STREAM_MAX_INFLIGHT: '64', YOCO_FAILPOINTS: 'shard.search-delay-ms=20' } : {}),
  });
});
afterAll(async () => {
  await cluster?.stop();
  const redis = connect();
  await flushPrefix(redis, prefix);
  redis.disconnect();
});

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

interface FloodResult {
  outcome: string;
  answered: number;
  codes: Record<string, number>;
  ms: number;
}

/** Floods one stream from a process of its own while this process sends ordinary Identify calls, one at a time. */
async function flood(kind: 'identify' | 'search', address: string) {
  const [id, vectors] = [...gallery.subjects][17];
  const pids = [cluster.coordinator.process.pid!, ...[...cluster.shards.values()].map((s) => s.process.pid!)];
  const peak = new Map<number, number>();
  const sampler = setInterval(() => {
    for (const pid of pids) peak.set(pid, Math.max(peak.get(pid) ?? 0, rssMb(pid)));
  }, 50);
  const flooder = promisify(execFile)(process.execPath, ['--import', 'tsx', join(ROOT, 'test/support/flood-client.ts'), kind, address, String(FLOOD_CALLS), JSON.stringify(Array.from(vectors[0]))], {
    cwd: ROOT,
    maxBuffer: 1 << 20,
  });
  let flooding = true;
  void flooder.finally(() => (flooding = false));
  const latencies: number[] = [];
  const errors: string[] = [];
  // The other caller: what a second gateway sends while the first floods.
  await new Promise((r) => setTimeout(r, 300));
  while (flooding || latencies.length < 50) {
    const t = performance.now();
    try {
      const r = await identify(cluster.matcherClient(), vectors[0], { topK: 5 }, 10_000);
      latencies.push(performance.now() - t);
      if (r.matches[0]?.subjectId !== id) errors.push(`wrong answer ${r.matches[0]?.subjectId}`);
    } catch (err) {
      errors.push((err as Error).message);
    }
    if (latencies.length + errors.length > 2000) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  clearInterval(sampler);
  const { stdout } = await flooder;
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as FloodResult;
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.max(0, Math.ceil(latencies.length * 0.99) - 1)];
  return { result, p99, latencies, errors, peakMb: Math.max(...peak.values()), peak };
}

describe('one caller flooding a stream does not starve the others', () => {
  it.each([
    { kind: 'identify' as const, what: 'IdentifyStream on the coordinator' },
    { kind: 'search' as const, what: "SearchStream on a shard (the coordinator's own calls share that shard)" },
  ])(`${FLOOD_CALLS} calls in flight on one $what: the excess gets RESOURCE_EXHAUSTED, nothing hangs, memory stays bounded, the other caller's p99 stays under 250 ms`, async ({ kind }) => {
    const address = kind === 'identify' ? cluster.address : cluster.shards.get('shard-0a')!.address;
    const { result, p99, latencies, errors, peakMb } = await flood(kind, address);
    console.log(
      `${kind} flood: ${result.answered}/${FLOOD_CALLS} answered in ${result.ms} ms, codes ${JSON.stringify(result.codes)}; ` +
        `other caller: ${latencies.length} calls, p99 ${p99.toFixed(1)} ms, ${errors.length} errors; peak RSS ${peakMb.toFixed(0)} MB`,
    );
    expect(result.outcome).toBe('answered');
    expect(result.answered).toBe(FLOOD_CALLS);
    expect(result.codes[Status.RESOURCE_EXHAUSTED]).toBeGreaterThan(0);
    expect(Object.keys(result.codes).map(Number).sort()).toEqual([Status.OK, Status.RESOURCE_EXHAUSTED].sort());
    expect(errors).toEqual([]);
    expect(p99).toBeLessThan(250);
    expect(peakMb).toBeLessThan(RSS_BOUND_MB);
  });
});
