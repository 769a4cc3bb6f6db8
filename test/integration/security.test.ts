import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { freePort, Rng } from '@yoco/common';
import { METHOD_ROLES, type Role } from '@yoco/coordinator';
import { issueCertificate, makeCa, makeLocalPki, mintToken, type LocalCluster, type LocalPki } from '@yoco/devkit';
import { bulkEnrol } from '@yoco/cli';
import { isServiceError, loadProtos, makeClient, statusName, type ClientSecurity } from '@yoco/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawUnary } from '../support/raw-unary.js';
import { cleanUp, startCluster, unitVector, writeGallery } from '../support/cluster.js';
import { testPrefix } from '../support/redis.js';

const prefix = testPrefix('security');
const prefixes = [prefix];
const dir = mkdtempSync(join(tmpdir(), 'yoco-pki-'));
let pki: LocalPki;
let secret: string;
let cluster: LocalCluster;
let shardAddress: string;
let shardHealth: string;
let coordinatorMetrics: number;
let shardMetrics: number;

const token = (sub: string, roles: string[], ttl?: number) => mintToken(secret, sub, roles, ttl);

/** The status a Matcher call ends with, as 'OK' or its name. */
async function outcome(security: ClientSecurity, method: string, request: unknown, address = cluster.address, service: 'Matcher' | 'Shard' = 'Matcher'): Promise<string> {
  const client = makeClient(loadProtos()[service] as never as grpc.ServiceClientConstructor, address, {}, security) as grpc.Client;
  try {
    await rawUnary(client, method, request, { deadline: Date.now() + 5000 });
    return 'OK';
  } catch (err) {
    return isServiceError(err) ? statusName(err.code) : String(err);
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  pki = makeLocalPki(dir);
  secret = readFileSync(pki.jwtSecretFile, 'utf8');
  await writeGallery(prefix, 50, 1);
  shardHealth = `127.0.0.1:${await freePort()}`;
  coordinatorMetrics = await freePort();
  shardMetrics = await freePort();
  cluster = await startCluster(prefix, {
    shards: 1,
    secure: { pki, adminToken: await token('test-admin', ['admin']) },
    // Certificates re-read every 200 ms (rotation below); a plaintext health-only port on the shard.
    env: { TLS_REFRESH_MS: '200' },
    shardEnv: () => ({ HEALTH_ADDRESS: shardHealth, METRICS_ADDRESS: `127.0.0.1:${shardMetrics}` }),
    coordinatorEnv: { CALLER_LIMITS: 'identify=20/4,enrol=100/16,admin=100/16', METRICS_ADDRESS: `127.0.0.1:${coordinatorMetrics}`, AUDIT_DECISIONS: 'full' },
  });
  const shard = cluster.shards.get('shard-0a')!;
  shardAddress = shard.address;
});
afterAll(async () => {
  await cleanUp(cluster, undefined, prefixes);
  rmSync(dir, { recursive: true, force: true });
});

describe('a secured cluster: TLS on every port, mutual TLS inside, tokens at the Matcher', () => {
  const tls = () => ({ tls: { caFile: pki.caFile } });
  const probe = () => ({ probe: { vector: { values: Array.from(unitVector(new Rng(1))) } }, topK: 3 });

  it('a plaintext client gets nowhere; reflection is off with TLS', async () => {
    expect(await outcome({ token: await token('gw', ['admin']) }, 'Identify', probe())).toBe('UNAVAILABLE');
    expect(await outcome({ ...tls(), token: await token('gw', ['admin']) }, 'Identify', probe())).toBe('OK');
    const def = (await import('@grpc/proto-loader')).loadSync('grpc/reflection/v1/reflection.proto', { includeDirs: [join(process.cwd(), 'node_modules/@grpc/reflection/build/proto')], keepCase: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } } };
    const reflection = makeClient(pkg.grpc.reflection.v1.ServerReflection as never as grpc.ServiceClientConstructor, cluster.address, {}, { ...tls(), token: await token('gw', ['admin']) }) as grpc.Client;
    const code = await new Promise<number>((resolve) => {
      const stream = (reflection as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<object, object> }).ServerReflectionInfo();
      stream.on('data', () => resolve(0));
      stream.on('error', (err: grpc.ServiceError) => resolve(err.code));
      stream.write({ list_services: '' });
    });
    reflection.close();
    expect(statusName(code)).toBe('UNIMPLEMENTED');
  });

  it('no token, a forged one, an expired one: UNAUTHENTICATED on every method', async () => {
    const forged = await mintToken('another-secret-another-secret-0123456789', 'gw', ['admin']);
    const expired = await token('gw', ['admin'], -60);
    for (const method of Object.keys(METHOD_ROLES).filter((m) => m !== 'IdentifyStream')) {
      expect(await outcome(tls(), method, {}), `${method} without a token`).toBe('UNAUTHENTICATED');
      expect(await outcome({ ...tls(), token: forged }, method, {}), `${method} forged`).toBe('UNAUTHENTICATED');
      expect(await outcome({ ...tls(), token: expired }, method, {}), `${method} expired`).toBe('UNAUTHENTICATED');
      expect(await outcome({ ...tls(), token: 'x.y.z' }, method, {}), `${method} garbage`).toBe('UNAUTHENTICATED');
    }
  });

  it('each role reaches exactly the methods of the table; the others are PERMISSION_DENIED', async () => {
    for (const role of ['identify', 'enrol', 'admin'] as Role[]) {
      const t = await token(`gw-${role}`, [role]);
      for (const [method, roles] of Object.entries(METHOD_ROLES)) {
        if (method === 'IdentifyStream') continue;
        const got = await outcome({ ...tls(), token: t }, method, {});
        // Allowed: the call reaches its handler, which judges the (empty) request; refused: the gate answers.
        if (roles.includes(role)) expect(['OK', 'INVALID_ARGUMENT', 'NOT_FOUND'], `${role} ${method}: ${got}`).toContain(got);
        else expect(got, `${role} ${method}`).toBe('PERMISSION_DENIED');
      }
    }
    // A token whose roles are none of ours is refused everything.
    expect(await outcome({ ...tls(), token: await token('gw', ['superuser']) }, 'Identify', probe())).toBe('PERMISSION_DENIED');
  });

  it("an enrol caller sees its own jobs only; another's is NOT_FOUND; an admin sees both", async () => {
    const a = { ...tls(), token: await token('site-a', ['enrol']) };
    const b = { ...tls(), token: await token('site-b', ['enrol']) };
    const client = makeClient(loadProtos().Matcher, cluster.address, {}, a);
    const v = unitVector(new Rng(9));
    const job = await new Promise<string>((resolve, reject) =>
      client.Enrol({ subjectId: 'sec-a-1', probes: [{ vector: { values: Array.from(v) } }], wait: true }, (err, res) => (err ? reject(err) : resolve(res!.jobId))),
    );
    client.close();
    expect(await outcome(a, 'GetJob', { jobId: job })).toBe('OK');
    expect(await outcome(b, 'GetJob', { jobId: job })).toBe('NOT_FOUND');
    expect(await outcome({ ...tls(), token: await token('ops', ['admin']) }, 'GetJob', { jobId: job })).toBe('OK');
  });

  it('a caller over its rate or its calls in flight gets RESOURCE_EXHAUSTED; another caller is not held back', async () => {
    const flooder = makeClient(loadProtos().Matcher, cluster.address, {}, { ...tls(), token: await token('flooder', ['identify']) });
    const calm = { ...tls(), token: await token('calm', ['identify']) };
    const req = probe();
    const flood = Promise.all(
      Array.from({ length: 60 }, () =>
        rawUnary(flooder, 'Identify', req, { deadline: Date.now() + 10_000 }).then(
          () => 'OK',
          (err) => (isServiceError(err) ? `${statusName(err.code)}: ${err.details}` : String(err)),
        ),
      ),
    );
    const calmOutcomes: string[] = [];
    for (let i = 0; i < 10; i++) calmOutcomes.push(await outcome(calm, 'Identify', req));
    const flooded = await flood;
    flooder.close();
    expect(calmOutcomes).toEqual(Array(10).fill('OK'));
    const refused = flooded.filter((o) => o.startsWith('RESOURCE_EXHAUSTED'));
    expect(refused.length).toBeGreaterThan(0);
    expect(flooded.filter((o) => o === 'OK').length).toBeGreaterThan(0);
    expect(flooded.every((o) => o === 'OK' || /^RESOURCE_EXHAUSTED: caller 'flooder' (is over its 20 calls per second|has \d+ calls in flight \(its limit is 4\))/.test(o))).toBe(true);
    const metrics = await (await fetch(`http://127.0.0.1:${coordinatorMetrics}/metrics`)).text();
    expect(metrics).toMatch(/yoco_coordinator_caller_denied_total\{caller="flooder",reason="(rate|inflight)"[^}]*\} [1-9]/);
    expect(metrics).not.toMatch(/caller="calm",reason/);
  });

  it('a bulk enrolment over its caller\'s rate waits for it instead of failing records', async () => {
    const client = makeClient(loadProtos().Matcher, cluster.address, {}, { ...tls(), token: await token('bulk-site', ['enrol']) });
    const rng = new Rng(21);
    const records = Array.from({ length: 150 }, (_, i) => ({ subjectId: `bulk-sec-${i}`, vectors: [unitVector(rng)] }));
    // 2 calls per record at 16 in flight: well over enrol=100/s here; the limiter refuses, the tool waits and retries.
    const summary = await bulkEnrol(client, records, records.length, 16, 'bulk');
    client.close();
    expect(summary.failed).toEqual([]);
    expect(summary.accepted).toBe(150);
  });

  it('a shard serves only the coordinator: no client certificate or another CA fails the handshake, a CA-signed certificate without its identity is PERMISSION_DENIED', async () => {
    const other = join(dir, 'other');
    makeCa(other, 'another CA');
    const stranger = issueCertificate(other, 'stranger', ['coordinator.yoco'], { cert: 'ca.crt', key: 'ca.key' });
    const insider = issueCertificate(dir, 'insider', ['gateway.yoco']);
    const shardCall = (security: ClientSecurity) => outcome(security, 'Status', {}, shardAddress, 'Shard');
    expect(await shardCall({ tls: { caFile: pki.caFile } })).toBe('UNAVAILABLE');
    expect(await shardCall({ tls: { caFile: pki.caFile, certFile: stranger.cert, keyFile: stranger.key } })).toBe('UNAVAILABLE');
    expect(await shardCall({ tls: { caFile: pki.caFile, certFile: insider.cert, keyFile: insider.key } })).toBe('PERMISSION_DENIED');
    expect(await shardCall({ tls: { caFile: pki.caFile, certFile: pki.coordinator.cert, keyFile: pki.coordinator.key } })).toBe('OK');
    expect(await shardCall({})).toBe('UNAVAILABLE');
  });

  it('the plaintext health port answers health and nothing else', async () => {
    const def = (await import('@grpc/proto-loader')).loadSync('health/v1/health.proto', { includeDirs: [join(process.cwd(), 'node_modules/grpc-health-check/proto')], enums: String });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
    const health = new pkg.grpc.health.v1.Health(shardHealth, grpc.credentials.createInsecure());
    const r = await rawUnary<{ status: string }>(health, 'Check', { service: 'yoco.v1.Shard' }, { deadline: Date.now() + 5000 });
    health.close();
    expect(r.status).toBe('SERVING');
    expect(await outcome({}, 'Status', {}, shardHealth, 'Shard')).toBe('UNIMPLEMENTED');
  });

  it('a certificate rotated on disk is served to new connections without a restart', async () => {
    const serial = () =>
      new Promise<string>((resolve, reject) => {
        const [host, port] = shardAddress.split(':');
        const s = tlsConnect({ host, port: Number(port), ca: readFileSync(pki.caFile), cert: readFileSync(pki.coordinator.cert), key: readFileSync(pki.coordinator.key), ALPNProtocols: ['h2'] }, () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.end();
        });
        s.on('error', reject);
      });
    const before = await serial();
    const next = issueCertificate(dir, 'shard-next', ['shard.yoco']);
    // The watcher reads both files; replacing the key first keeps a mismatched pair from being read for long.
    copyFileSync(next.key, pki.servers.shard.key);
    copyFileSync(next.cert, pki.servers.shard.cert);
    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await serial();
    }
    expect(after).not.toBe(before);
    // And the coordinator still reaches the shard with it.
    expect(await outcome({ ...tls(), token: await token('gw', ['identify']) }, 'Identify', probe())).toBe('OK');
  });

  it('audit: writes, admin reads and every denial carry the right caller; decisions too; `yoco audit` lists them', async () => {
    const admin = makeClient(loadProtos().Matcher, cluster.address, {}, { ...tls(), token: await token('auditor', ['admin']) });
    const list = async (req: object) => {
      for (let i = 0; ; i++) {
        const r = await new Promise<{ records: { caller: string; method: string; subjectId: string; jobId: string; outcome: string; acceptedSubjectId: string }[] }>((resolve, reject) =>
          admin.ListAudit(req, (err, res) => (err ? reject(err) : resolve(res as never))),
        );
        if (r.records.length > 0 || i > 20) return r.records;
        await new Promise((res) => setTimeout(res, 100));
      }
    };
    const enrolled = await list({ subjectId: 'sec-a-1' });
    expect(enrolled.find((r) => r.method === 'Enrol')).toMatchObject({ caller: 'site-a', subjectId: 'sec-a-1', outcome: 'OK' });
    expect(enrolled.find((r) => r.method === 'Enrol')!.jobId).toMatch(/^\d+$/);
    const all = await list({ limit: 1000 });
    expect(all.some((r) => r.caller === 'gw-identify' && r.method === 'Enrol' && r.outcome === 'PERMISSION_DENIED')).toBe(true);
    expect(all.some((r) => /^unauthenticated@/.test(r.caller) && r.outcome === 'UNAUTHENTICATED')).toBe(true);
    expect(all.some((r) => r.caller === 'flooder' && r.outcome === 'RESOURCE_EXHAUSTED')).toBe(true);
    // Nobody else's sub is put on a record: every caller named is one this test minted a token for.
    const known = /^(site-a|site-b|ops|auditor|flooder|calm|bulk-site|gw|gw-identify|gw-enrol|gw-admin|test-admin|unauthenticated@.*)$/;
    expect(all.filter((r) => !known.test(r.caller))).toEqual([]);
    const decisions = await list({ decisions: true, limit: 1000 });
    expect(decisions.some((r) => r.caller === 'calm' && r.method === 'Identify' && r.outcome === 'OK')).toBe(true);
    admin.close();
    const cli = spawnSync(process.execPath, [join(process.cwd(), 'packages/cli/bin/yoco.js'), 'audit', '--subject', 'sec-a-1', '--address', cluster.address, '--ca-file', pki.caFile, '--token', await token('auditor', ['admin'])], { encoding: 'utf8', timeout: 20_000 });
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/site-a Enrol subject=sec-a-1 job=\d+ OK/);
  });

  it('/metrics (plaintext, any address) never carries a subject id', async () => {
    for (const port of [coordinatorMetrics, shardMetrics]) {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toMatch(/yoco_rpc_requests_total/);
      for (const subject of ['sec-a-1', 'p1-0', 'p1-1', 'leaver']) expect(text, `port ${port}`).not.toContain(subject);
    }
  });
});

