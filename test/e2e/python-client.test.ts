import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@yoco/common';
import { stopChild } from '@yoco/devkit';
import { PROTO_DIR } from '@yoco/rpc';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, flushPrefix, redisUrl, testPrefix } from '../support/redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// Debian's interpreter: python3-grpcio and python3-grpc-tools live there, not in other pythons on PATH.
const PYTHON = '/usr/bin/python3';
const prefix = testPrefix('python');

afterAll(async () => {
  const redis = connect();
  await flushPrefix(redis, prefix);
  redis.disconnect();
});

describe('an external Python gRPC client against the cluster npm start runs', () => {
  it('gets SERVING from grpc.health.v1 and the right subject from Identify', async () => {
    const stubs = mkdtempSync(join(tmpdir(), 'yoco-py-'));
    const healthProto = join(ROOT, 'node_modules/grpc-health-check/proto');
    execFileSync(PYTHON, ['-m', 'grpc_tools.protoc', `-I${PROTO_DIR}`, `-I${healthProto}`, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`,
      // Every proto of ours: external clients generate from all of them, with whatever protoc their distribution has.
      'yoco/v1/matcher.proto', 'yoco/v1/shard.proto', 'yoco/v1/embedder.proto', 'health/v1/health.proto']);

    const dataDir = mkdtempSync(join(tmpdir(), 'yoco-up-'));
    const address = `127.0.0.1:${await freePort()}`;
    // Exactly what `npm start` runs after building.
    const up = spawn(process.execPath, [join(ROOT, 'packages/cli/bin/yoco.js'), 'up'], {
      // The face profile (D = 128) keeps the start quick; the default profile runs the same code at D = 3840.
      env: { ...process.env, REDIS_URL: redisUrl(), YOCO_PREFIX: prefix, GRPC_ADDRESS: address, YOCO_DATA_DIR: dataDir, YOCO_DEMO_SUBJECTS: '300', YOCO_PROFILE: 'face-resnet128', FACE_CROP: 'none', YOCO_CALIBRATE_DEMO: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    up.stdout!.on('data', (d) => (output += d));
    up.stderr!.on('data', (d) => (output += d));
    try {
      const started = Date.now();
      while (!output.includes('YOCO Matcher listening on')) {
        if (up.exitCode !== null) throw new Error(`yoco up exited: ${output}`);
        if (Date.now() - started > 90_000) throw new Error(`yoco up did not come up: ${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(output).toContain(`listening on ${address}`);
      const probe = JSON.parse(readFileSync(join(dataDir, 'demo-probe.json'), 'utf8')) as { subject_id: string };
      const out = execFileSync(PYTHON, [join(ROOT, 'test/e2e/python_client.py'), stubs, address, join(dataDir, 'demo-probe.json'), join(dataDir, 'demo-probe.jpg')], { encoding: 'utf8' });
      const res = JSON.parse(out) as {
        health: Record<string, string>;
        matches: { subject_id: string; accepted: boolean }[];
        image_matches: { subject_id: string }[];
        gallery_size: number;
        bad_vector: string;
      };
      expect(res.health).toEqual({ '(server)': 'SERVING', 'yoco.v1.Matcher': 'SERVING' });
      expect(res.matches).toHaveLength(5);
      expect(res.matches[0]).toMatchObject({ subject_id: probe.subject_id, accepted: true });
      // 300 synthetic subjects with 1-2 templates each, and the 12 demo photos.
      expect(res.gallery_size).toBe(462);
      // The altered copy of a demo photo, sent as an image, is embedded by the cluster and found.
      expect(output).toMatch(/demo-probe\.jpg is an altered copy of (photo-\w+)/);
      expect(res.image_matches[0].subject_id).toBe(/altered copy of (photo-\w+)/.exec(output)![1]);
      expect(res.bad_vector).toBe('INVALID_ARGUMENT');
      // The example client (clients/python): its own stubs from generate.sh, its wrapper, the same answer.
      const exampleStubs = mkdtempSync(join(tmpdir(), 'yoco-py-example-'));
      execFileSync('bash', [join(ROOT, 'clients/python/generate.sh'), exampleStubs], { env: { ...process.env, PATH: `/usr/bin:${process.env.PATH}` } });
      const example = JSON.parse(execFileSync(PYTHON, [join(ROOT, 'clients/python/example.py'), exampleStubs, address, join(dataDir, 'demo-probe.json')], { encoding: 'utf8' })) as { best: string; accepted: boolean; verify: [boolean, number]; bad: [string, string] };
      expect(example).toMatchObject({ best: probe.subject_id, accepted: true, bad: ['INVALID_ARGUMENT', 'VECTOR_LENGTH'] });
      expect(example.verify[0]).toBe(true);
    } finally {
      await stopChild(up, 'SIGTERM');
    }
    // Ctrl-C (SIGTERM here) stopped every child: nothing listens any more.
    expect(output).toContain('stopping');
  });
});
