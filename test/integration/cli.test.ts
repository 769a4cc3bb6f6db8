import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, Rng } from '@yoco/common';
import { stopChild, type LocalCluster } from '@yoco/cli';
import { loadProtos, makeClient, unary } from '@yoco/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIM, startCluster, unitVector } from '../support/cluster.js';
import { connect, flushPrefix, redisUrl, testPrefix } from '../support/redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const YOCO = join(ROOT, 'packages/cli/bin/yoco.js');
const prefix = testPrefix('cli');
let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await startCluster(prefix, { shards: 2 });
});
afterAll(async () => {
  await cluster?.stop();
  const redis = connect();
  await flushPrefix(redis, prefix);
  redis.disconnect();
});

async function yoco(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [YOCO, ...args], {
      env: { ...process.env, REDIS_URL: redisUrl(), YOCO_PREFIX: prefix, YOCO_ADDRESS: cluster.address },
    });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

describe('the yoco command', () => {
  it('imports JSON Lines into a running cluster, identifies a vector file and shows status', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'yoco-cli-'));
    const rng = new Rng(8);
    const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ subject_id: `emp-${i}`, vectors: [Array.from(unitVector(rng)), Array.from(unitVector(rng))] }));
    lines.push(JSON.stringify({ subject_id: 'bad id', vector: Array.from(unitVector(rng)) }));
    lines.push(JSON.stringify({ subject_id: 'short', vector: [1, 2, 3] }));
    writeFileSync(join(dir, 'gallery.jsonl'), lines.join('\n') + '\n');
    const imported = await yoco('import', join(dir, 'gallery.jsonl'), '--concurrency', '8', '--dim', String(DIM));
    expect(imported.code).toBe(1);
    expect(imported.out).toContain('imported 200 subjects, 2 failed');
    expect(imported.out).toMatch(/line 201: subject id 'bad id' is invalid/);
    expect(imported.out).toMatch(/line 202: template has 3 values, expected 64/);

    const target = JSON.parse(lines[42]) as { vectors: number[][] };
    writeFileSync(join(dir, 'probe.json'), JSON.stringify(target.vectors[1]));
    // Shards follow the change stream: the import shows up without a restart.
    let res: any;
    for (let i = 0; i < 50; i++) {
      const r = await yoco('identify', '--vector-file', join(dir, 'probe.json'), '--json', '--top-k', '3');
      expect(r.code).toBe(0);
      res = JSON.parse(r.out);
      if (res.gallerySize === 400) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(res.gallerySize).toBe(400);
    expect(res.matches[0]).toMatchObject({ subjectId: 'emp-42', accepted: true });

    const f32 = new Float32Array(target.vectors[0]);
    writeFileSync(join(dir, 'probe.f32'), Buffer.from(f32.buffer));
    const text = await yoco('identify', '--vector-file', join(dir, 'probe.f32'));
    expect(text.out).toMatch(/1\. ACCEPT 0\.\d+ {2}emp-42/);

    const status = await yoco('status', '--json');
    const s = JSON.parse(status.out);
    expect(s.shardCount).toBe(2);
    expect(s.gallerySize).toBe(400);
    expect(s.shards.map((x: any) => x.replicas[0].state)).toEqual(['SERVING', 'SERVING']);
    expect((await yoco('status')).out).toMatch(/shard 1: healthy/);

    const bad = await yoco('identify', '--vector-file', join(dir, 'gallery.jsonl'));
    expect(bad.code).toBe(1);
  });
});

describe('shard discovery by DNS name', () => {
  it('a coordinator given SHARD_DNS=localhost:port finds the replica behind it', async () => {
    const shardPort = cluster.shards.get('shard-0a')!.address.split(':')[1];
    const address = `127.0.0.1:${await freePort()}`;
    const coordinator = spawn(process.execPath, [join(ROOT, 'services/coordinator/dist/main.js')], {
      env: { ...process.env, REDIS_URL: redisUrl(), YOCO_PREFIX: prefix, GRPC_ADDRESS: address, METRICS_ADDRESS: '127.0.0.1:0', SHARD_DNS: `localhost:${shardPort}`, SHARD_REFRESH_MS: '200' },
      stdio: 'ignore',
    });
    const client = makeClient(loadProtos().Matcher, address);
    try {
      let status: any;
      for (let i = 0; i < 100; i++) {
        status = await unary<object, any>(client, 'ClusterStatus', {}, { deadline: Date.now() + 1000 }).catch(() => undefined);
        if (status?.shards?.[0]?.healthy) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      // localhost resolves to the loopback address(es); the one the shard listens on serves shard 0 of 2.
      expect(status.shardCount).toBe(2);
      expect(status.shards[0].replicas.some((r: any) => r.address === `127.0.0.1:${shardPort}` && r.healthy)).toBe(true);
    } finally {
      client.close();
      await stopChild(coordinator, 'SIGTERM');
    }
  });
});
