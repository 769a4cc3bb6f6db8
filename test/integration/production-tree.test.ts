import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, Rng } from '@yoco/common';
import { stopChild } from '@yoco/devkit';
import { MODELS_DIR } from '@yoco/models';
import { loadProtos, makeClient, unary } from '@yoco/rpc';
import { afterAll, describe, expect, it } from 'vitest';
import { flushPrefix, connect, redisUrl, testPrefix } from '../support/redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const tree = mkdtempSync(join(tmpdir(), 'yoco-prod-'));
const prefix = testPrefix('prod');
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) await stopChild(c, 'SIGTERM');
  rmSync(tree, { recursive: true, force: true });
  const r = connect();
  await flushPrefix(r, prefix);
  r.disconnect();
});

/** Starts a service from the production tree; resolves with its 'ready' line's fields. */
function start(service: string, env: Record<string, string>): Promise<Record<string, number>> {
  // Only the tree's own node_modules: nothing of this checkout's (its devDependencies) can be found from there.
  const child = spawn(process.execPath, [join(tree, 'services', service, 'dist/main.js')], { cwd: tree, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"ready"')) resolve(JSON.parse(line));
      if (line.includes('"level":60')) reject(new Error(`${service}: ${line}`));
    });
    child.once('exit', (code) => reject(new Error(`${service} exited ${code}: ${err.slice(-2000)}`)));
  });
}

describe('the production tree (what the image runs)', () => {
  it('deploy/assemble-production.sh builds a tree of production dependencies only, and every service and the CLI run from it', async () => {
    const built = spawnSync('bash', [join(ROOT, 'deploy/assemble-production.sh'), tree, '--offline'], { encoding: 'utf8', timeout: 300_000 });
    expect(built.status, built.stderr).toBe(0);
    // Not there: what only builds or tests need.
    for (const dev of ['typescript', 'vitest', 'tsx', '@bufbuild']) expect(existsSync(join(tree, 'node_modules', dev)), dev).toBe(false);
    // There: what yoco train needs (a Job in the image can train), which @yoco/train declares itself.
    expect(existsSync(join(tree, 'node_modules', '@tensorflow/tfjs-backend-wasm')), 'tfjs-backend-wasm').toBe(true);
    const base = { REDIS_URL: redisUrl(), YOCO_PREFIX: prefix, METRICS_ADDRESS: '127.0.0.1:0', YOCO_DIM: '128', YOCO_HIDDEN: '256' };
    const shard = `127.0.0.1:${await freePort()}`;
    const embedder = `127.0.0.1:${await freePort()}`;
    const matcher = `127.0.0.1:${await freePort()}`;
    // The head's settings are the shard's alone (the others take them for typos).
    const notHead = { REDIS_URL: base.REDIS_URL, YOCO_PREFIX: base.YOCO_PREFIX, METRICS_ADDRESS: base.METRICS_ADDRESS };
    await Promise.all([
      start('shard', { ...base, SHARD_INDEX: '0', SHARD_COUNT: '1', GRPC_ADDRESS: shard, KERNEL_THREADS: '1' }),
      // The image builds its models; here the checkout's (built on demand) are lent to it.
      start('embedder', { METRICS_ADDRESS: '127.0.0.1:0', GRPC_ADDRESS: embedder, EMBEDDER_PROFILE: 'face-resnet128', MODELS_DIR }),
    ]);
    await start('coordinator', { ...notHead, SHARD_ADDRESSES: shard, EMBEDDER_ADDRESS: embedder, GRPC_ADDRESS: matcher, SHARD_REFRESH_MS: '200' });
    await start('enroller', { ...notHead });
    const client = makeClient(loadProtos().Matcher, matcher);
    // A face: the face profile finds and aligns it with the detector and landmark graphs the tree builds.
    const photo = readFileSync(join(tree, 'node_modules/@vladmandic/face-api/demo/sample2.jpg'));
    const e = await unary(client, 'Enrol', { subjectId: 'prod-1', probes: [{ image: photo }], wait: true }, { deadline: Date.now() + 60_000 });
    const r = await unary(client, 'Identify', { probe: { image: photo }, topK: 1, consistencyToken: e.consistencyToken }, { deadline: Date.now() + 60_000 });
    expect(r.matches[0]).toMatchObject({ subjectId: 'prod-1', accepted: true });
    const v = Array.from(new Rng(1).normals(128));
    expect((await unary(client, 'Identify', { probe: { vector: { values: v } }, topK: 1 }, { deadline: Date.now() + 10_000 })).matches).toHaveLength(1);
    client.close();
    const cli = spawnSync(process.execPath, [join(tree, 'packages/cli/bin/yoco.js'), 'status', '--address', matcher], { cwd: tree, env: { PATH: process.env.PATH }, encoding: 'utf8', timeout: 30_000 });
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/k=1 .*dim=128/);
  });
});
