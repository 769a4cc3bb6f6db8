import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { DEMO_PHOTOS } from '@yoco/cli';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@yoco/common';
import { stopChild } from '@yoco/devkit';
import { StoreKeys } from '@yoco/gallery';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, flushPrefix, redisUrl, testPrefix } from '../support/redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const YOCO = join(ROOT, 'packages/cli/bin/yoco.js');
const prefix = testPrefix('npmstart');
const dataDir = mkdtempSync(join(tmpdir(), 'yoco-up-'));
let first: ChildProcess | undefined;
afterAll(async () => {
  if (first) await stopChild(first, 'SIGINT');
  const r = connect();
  await flushPrefix(r, prefix);
  r.disconnect();
});

function up(env: Record<string, string>): { child: ChildProcess; output: () => string; until: (text: string | RegExp, ms?: number) => Promise<void> } {
  const child = spawn(process.execPath, [YOCO, 'up'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const until = async (text: string | RegExp, ms = 120_000) => {
    const started = Date.now();
    while (!(typeof text === 'string' ? output.includes(text) : text.test(output))) {
      if (child.exitCode !== null) throw new Error(`yoco up exited (${child.exitCode}): ${output}`);
      if (Date.now() - started > ms) throw new Error(`no '${text}' after ${ms} ms: ${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { child, output: () => output, until };
}

describe('npm start (yoco up): safe and honest', () => {
  it('refuses a second start on its data directory, writes cluster.json the CLI reads, and restarts a child that dies, saying why', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    // Enough that the interruption below (after 100 changes) lands mid-demo.
    const demoSubjects = 1000;
    const env = { REDIS_URL: redisUrl(), YOCO_PREFIX: prefix, GRPC_ADDRESS: address, YOCO_DATA_DIR: dataDir, YOCO_DEMO_SUBJECTS: String(demoSubjects), YOCO_PROFILE: 'face-resnet128', FACE_CROP: 'none' };

    // Ctrl-C in the middle of the first start's demo enrolment: the next start finishes it.
    const redis = connect();
    const changes = new StoreKeys(prefix).changes;
    const interrupted = up(env);
    first = interrupted.child;
    await interrupted.until('demo gallery');
    while ((await redis.xlen(changes)) < 100) {
      if (interrupted.child.exitCode !== null) throw new Error(interrupted.output());
      await new Promise((r) => setTimeout(r, 20));
    }
    await stopChild(interrupted.child, 'SIGINT');
    first = undefined;
    const cut = await redis.xlen(changes);
    // Interrupted for real: part of the demo is in, not all of it.
    expect(cut).toBeLessThan(demoSubjects);
    expect(existsSync(join(dataDir, 'demo.done'))).toBe(false);

    const a = up(env);
    first = a.child;
    await a.until('YOCO Matcher listening on', 240_000);
    expect(a.output()).toContain(`enrolled ${demoSubjects} demo subjects; ${join(dataDir, 'demo-probe.json')} is a probe of`);
    expect(existsSync(join(dataDir, 'demo.done'))).toBe(true);
    const demoProbe = JSON.parse(readFileSync(join(dataDir, 'demo-probe.json'), 'utf8')) as { subject_id: string };
    expect(a.output()).toMatch(/^ {2}http:\/\/127\.0\.0\.1:\d+\/metrics {2}\(coordinator\)$/m);
    // The first start calibrates the threshold for its demo gallery; the coordinator applies it and says where it came from.
    expect(a.output()).toMatch(/calibrating the threshold for the demo gallery: \d+ searches/);
    const calibrated = JSON.parse(spawnSync(process.execPath, [YOCO, 'status', '--json'], { env: { ...process.env, YOCO_DATA_DIR: dataDir }, encoding: 'utf8', timeout: 30_000 }).stdout) as { defaultThreshold: number; thresholdSource: { source: string; fpir: number; searches: number } };
    expect(calibrated.thresholdSource).toMatchObject({ source: join(dataDir, 'threshold.json'), fpir: 0.01 });
    expect(calibrated.thresholdSource.searches).toBeGreaterThanOrEqual(300);
    expect(calibrated.defaultThreshold).not.toBe(0.5);

    // A second start: refused at once, naming the first; the first goes on.
    const b = spawnSync(process.execPath, [YOCO, 'up'], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
    expect(b.status).toBe(1);
    expect(b.stderr).toContain(`YOCO is already running (pid ${a.child.pid}) on ${address}`);
    expect(b.stderr).not.toMatch(/\bat \S+ \(/);
    // Another data directory, the same address: refused before it starts anything (its readiness check would reach the first).
    const other = spawnSync(process.execPath, [YOCO, 'up'], { env: { ...process.env, ...env, YOCO_DATA_DIR: mkdtempSync(join(tmpdir(), 'yoco-up2-')) }, encoding: 'utf8', timeout: 60_000 });
    expect(other.status).toBe(1);
    expect(other.stderr).toContain(`${address} is already in use (another npm start with another YOCO_DATA_DIR?)`);

    // cluster.json: the CLI needs no address here, and status shows where the metrics are.
    const cluster = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as { matcher: string; processes: { name: string; pid: number; metrics: string }[] };
    expect(cluster.matcher).toBe(address);
    expect(cluster.processes.map((p) => p.name).sort()).toEqual(['coordinator', 'embedder', 'enroller', 'shard-0a', 'shard-1a']);
    const status = spawnSync(process.execPath, [YOCO, 'status'], { env: { ...process.env, YOCO_DATA_DIR: dataDir, YOCO_ADDRESS: '' }, encoding: 'utf8', timeout: 30_000 });
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toContain(`cluster at ${address}`);
    expect(status.stdout).toMatch(/metrics:\n {2}http:\/\/127\.0\.0\.1:\d+\/metrics {2}\(/);

    // The CLI with no address: enrol by image, verify, subject, identify with its options.
    const yoco = (...args: string[]) => spawnSync(process.execPath, [YOCO, ...args], { env: { ...process.env, YOCO_DATA_DIR: dataDir, YOCO_ADDRESS: '' }, encoding: 'utf8', timeout: 60_000 });
    const photo = join(DEMO_PHOTOS, readdirSync(DEMO_PHOTOS).filter((f) => /\.jpe?g$/i.test(f)).sort()[0]);
    const enrolled = yoco('enrol', 'cli-face', '--image', photo, '--wait');
    expect(enrolled.status, enrolled.stderr).toBe(0);
    expect(enrolled.stdout).toMatch(/job \d+: cli-face with templates [0-9a-f]{20}; applied, token \d+-\d+/);
    const token = /token (\d+-\d+)/.exec(enrolled.stdout)![1];
    const verified = yoco('verify', 'cli-face', photo, '--consistency-token', token);
    expect(verified.stdout).toMatch(/^MATCH: cli-face scores [01]\.\d{4} \(threshold/);
    expect(verified.status).toBe(0);
    expect(yoco('subject', 'cli-face').stdout).toMatch(/^cli-face: 1 templates \([0-9a-f]{20}\); slot \d+, shard [01]/);
    const identified = yoco('identify', photo, '--top-k', '3', '--allow-partial', '--json');
    expect((JSON.parse(identified.stdout) as { matches: { subjectId: string }[] }).matches[0].subjectId).toBe('cli-face');
    // The finished demo: every subject is there, and its probe finds its subject.
    const inDemo = JSON.parse(yoco('status', '--json').stdout) as { gallerySize: number };
    expect(inDemo.gallerySize).toBeGreaterThanOrEqual(demoSubjects);
    const demoHit = JSON.parse(yoco('identify', '--vector-file', join(dataDir, 'demo-probe.json'), '--json').stdout) as { matches: { subjectId: string }[] };
    expect(demoHit.matches[0].subjectId).toBe(demoProbe.subject_id);
    for (const id of ['demo-00000', `demo-${String(demoSubjects - 1).padStart(5, '0')}`]) expect(yoco('subject', id).status).toBe(0);

    // Photos in bulk: a folder per subject, and JSON Lines naming image files (relative to the file).
    const photos = readdirSync(DEMO_PHOTOS).filter((f) => /\.jpe?g$/i.test(f)).sort();
    const people = mkdtempSync(join(tmpdir(), 'yoco-people-'));
    for (const [name, files] of [['alice', [photos[1]]], ['bob', [photos[2], photos[3]]], ['nobody', []]] as const) {
      mkdirSync(join(people, name));
      for (const f of files) copyFileSync(join(DEMO_PHOTOS, f), join(people, name, f));
    }
    const byFolder = yoco('enrol', '--bulk', people, '--wait', '--json');
    expect(JSON.parse(byFolder.stdout)).toMatchObject({ accepted: 2, unchanged: 0, failed: 1, failures: [{ where: join(people, 'nobody'), reason: 'no images in the folder (.jpg, .jpeg, .png, .webp)' }] });
    expect(byFolder.status).toBe(1);
    expect(JSON.parse(yoco('subject', 'bob', '--json').stdout)).toMatchObject({ subjectId: 'bob', templateIds: [expect.any(String), expect.any(String)] });
    const lines = join(people, 'more.jsonl');
    writeFileSync(lines, [JSON.stringify({ subject_id: 'carol', image: `alice/${photos[1]}` }), JSON.stringify({ subject_id: 'dave', images: ['no-such.jpg'] })].join('\n'));
    const byLines = yoco('enrol', '--bulk', lines, '--wait', '--json');
    expect(JSON.parse(byLines.stdout)).toMatchObject({ accepted: 1, failed: 1, failures: [{ where: `${lines}:2`, reason: expect.stringContaining("image 0 'no-such.jpg' is not a file") }] });
    // The same photo three times (the demo enrolled it as photo-<name>): three equal top scores.
    const carol = JSON.parse(yoco('identify', join(DEMO_PHOTOS, photos[1]), '--top-k', '3', '--json').stdout) as { matches: { subjectId: string }[] };
    expect(carol.matches.map((m) => m.subjectId).sort()).toEqual(['alice', 'carol', `photo-${photos[1].replace(/\.[^.]+$/, '')}`]);
    // import carries vectors only, and says where photos go; --json there too.
    const imported = yoco('import', lines, '--json');
    expect(JSON.parse(imported.stdout)).toMatchObject({ imported: 0, failed: 2, failures: [{ where: `${lines}:1`, reason: 'images are embedded by the cluster: load image records with `yoco enrol --bulk`' }, { where: `${lines}:2` }] });
    const bad = yoco('identify', photo, '--top-k', 'abc');
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe("error: --top-k 'abc' is not a whole number from 1 to 1000");
    const nowhere = spawnSync(process.execPath, [YOCO, 'status', '--address', '127.0.0.1:1'], { encoding: 'utf8', timeout: 30_000 });
    expect(nowhere.stderr).toMatch(/^error: no Matcher at 127\.0\.0\.1:1; is `npm start` running\?/);

    // A shard killed under it: reported with its reason and restarted; the cluster is whole again.
    const shard = cluster.processes.find((p) => p.name === 'shard-0a')!;
    process.kill(shard.pid, 'SIGKILL');
    await a.until(/shard-0a exited \(SIGKILL\): .*; restarting in 1 s/, 10_000);
    for (let i = 0; ; i++) {
      const s = spawnSync(process.execPath, [YOCO, 'status', '--json'], { env: { ...process.env, YOCO_DATA_DIR: dataDir }, encoding: 'utf8', timeout: 30_000 });
      const healthy = s.status === 0 && (JSON.parse(s.stdout) as { shards: { healthy: boolean }[] }).shards.every((sh) => sh.healthy);
      if (healthy) break;
      if (i > 300) throw new Error(`shard-0a did not come back: ${a.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // cluster.json follows the restart: the new pid, and a metrics URL that answers.
    const after = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as typeof cluster;
    const restarted = after.processes.find((p) => p.name === 'shard-0a')!;
    expect(restarted.pid).not.toBe(shard.pid);
    expect(() => process.kill(restarted.pid, 0)).not.toThrow();
    expect((await fetch(restarted.metrics)).status).toBe(200);

    // Ctrl-C: everything stops, the lock and cluster.json go.
    redis.disconnect();
    await stopChild(a.child, 'SIGINT');
    first = undefined;
    expect(existsSync(join(dataDir, 'yoco.pid'))).toBe(false);
    expect(existsSync(join(dataDir, 'cluster.json'))).toBe(false);

    // A child that cannot start (a bad setting): the start fails at once with its reason, not a minute of restarts.
    const broken = spawnSync(process.execPath, [YOCO, 'up'], { env: { ...process.env, ...env, SHARD_ENGINE: 'bogus' }, encoding: 'utf8', timeout: 90_000 });
    expect(broken.status).toBe(1);
    expect(broken.stderr).toMatch(/^error: shard-[01]a exited \(code 1\): .*SHARD_ENGINE/m);
    expect(broken.stdout).not.toContain('restarting');
    expect(existsSync(join(dataDir, 'yoco.pid'))).toBe(false);
  }, 400_000);
});
