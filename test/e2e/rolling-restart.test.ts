import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, Rng } from '@yoco/common';
import { stopChild, type LocalCluster } from '@yoco/devkit';
import { isServiceError, loadProtos, makeClient, Status, statusName, unary, type v1 } from '@yoco/rpc';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanUp, startCluster, unitVector, writeGallery } from '../support/cluster.js';
import { testPrefix } from '../support/redis.js';

const prefix = testPrefix('rolling');
let cluster: LocalCluster | undefined;
let second: ChildProcess | undefined;
afterAll(async () => {
  if (second) await stopChild(second, 'SIGTERM');
  await cleanUp(cluster, undefined, [prefix]);
});

/** Steady Identify traffic until stop(): every outcome counted. */
function traffic(call: (v: Float32Array) => Promise<unknown>, loops = 4) {
  const rng = new Rng(3);
  const failures: string[] = [];
  let calls = 0;
  let slowest = 0;
  let running = true;
  const done = Promise.all(
    Array.from({ length: loops }, async () => {
      while (running) {
        const t = Date.now();
        try {
          await call(unitVector(rng));
        } catch (err) {
          failures.push(isServiceError(err) ? `${statusName(err.code)}: ${err.details}` : String(err));
        }
        calls++;
        slowest = Math.max(slowest, Date.now() - t);
        await new Promise((r) => setTimeout(r, 5));
      }
    }),
  );
  return {
    async stop() {
      running = false;
      await done;
      return { calls, failures, slowest };
    },
  };
}

async function serving(client: v1.MatcherClient, name: string, address: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const s = await unary(client, 'ClusterStatus', {}, { deadline: Date.now() + 2000 }).catch(() => undefined);
    if (s?.shards.some((sh) => sh.replicas.some((r) => r.address === address && r.healthy && r.state === 'SERVING'))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not come back SERVING`);
}

describe('a zero-downtime rolling restart', () => {
  it('every shard replica of 2 replica groups restarted one after another under steady Identify traffic: no call fails', async () => {
    await writeGallery(prefix, 400, 2);
    cluster = await startCluster(prefix, { shards: 2, replicas: 2 });
    const c = cluster;
    const client = c.matcherClient();
    const load = traffic((v) => unary(client, 'Identify', { probe: { vector: { values: Array.from(v) } }, topK: 5 }, { deadline: Date.now() + 5000 }));
    const started = Date.now();
    for (const name of ['shard-0a', 'shard-1a', 'shard-0b', 'shard-1b']) {
      await c.kill(name, 'SIGTERM');
      c.restart(name);
      await serving(client, name, c.shards.get(name)!.address);
    }
    const { calls, failures, slowest } = await load.stop();
    console.log(`rolling restart of 4 shard replicas: ${calls} Identify calls in ${((Date.now() - started) / 1000).toFixed(1)} s, ${failures.length} failed, slowest ${slowest} ms`);
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(100);
  });

  it('2 coordinators restarted one after the other behind a client that balances and retries UNAVAILABLE once on the other: no call fails', async () => {
    const c = cluster!;
    const port = await freePort();
    const env = { ...c.coordinator.env, GRPC_ADDRESS: `127.0.0.1:${port}` };
    const spawnCoordinator = () => spawn(process.execPath, [c.coordinator.script], { env: { ...process.env, ...env }, stdio: 'ignore' });
    second = spawnCoordinator();
    const addresses = [c.address, `127.0.0.1:${port}`];
    const clients = addresses.map((a) => makeClient(loadProtos().Matcher, a));
    const ready = async (i: number) => {
      for (let n = 0; n < 300; n++) {
        const ok = await unary(clients[i], 'ClusterStatus', {}, { deadline: Date.now() + 1000 }).then((s) => s.shards.length === 2 && s.shards.every((sh) => sh.healthy), () => false);
        if (ok) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`coordinator ${addresses[i]} not ready`);
    };
    await ready(1);
    let turn = 0;
    // A gateway's client: round robin; UNAVAILABLE (a coordinator draining or gone) is retried once on the other.
    const call = async (v: Float32Array) => {
      const first = turn++ % 2;
      const req = { probe: { vector: { values: Array.from(v) } }, topK: 5 };
      try {
        return await unary(clients[first], 'Identify', req, { deadline: Date.now() + 5000 });
      } catch (err) {
        if (!isServiceError(err) || err.code !== Status.UNAVAILABLE) throw err;
        return unary(clients[1 - first], 'Identify', req, { deadline: Date.now() + 5000 });
      }
    };
    const load = traffic(call);
    await new Promise((r) => setTimeout(r, 500));
    await stopChild(c.coordinator.process, 'SIGTERM');
    c.coordinator.process = spawn(process.execPath, [c.coordinator.script], { env: { ...process.env, ...c.coordinator.env }, stdio: 'ignore' });
    await ready(0);
    await stopChild(second, 'SIGTERM');
    second = spawnCoordinator();
    await ready(1);
    await new Promise((r) => setTimeout(r, 500));
    const { calls, failures, slowest } = await load.stop();
    for (const cl of clients) cl.close();
    console.log(`rolling restart of 2 coordinators: ${calls} Identify calls, ${failures.length} failed, slowest ${slowest} ms`);
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(100);
  });
});
