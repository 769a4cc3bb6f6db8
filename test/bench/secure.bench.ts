/**
 * What security costs on Identify: the same gallery served three ways, side
 * by side in one run (rounds taking turns, so all three see the same machine):
 * plaintext; TLS to the Matcher with mutual TLS to the shards; and that plus a
 * bearer JWT checked on every call (and per-caller limits).
 * `npm run bench:secure` (`-- --subjects N`).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { demoVector } from '@yoco/cli';
import { Rng } from '@yoco/common';
import { LocalCluster, makeLocalPki, mintToken } from '@yoco/devkit';
import { DIRECT_CLIENT_OPTIONS, loadProtos, makeClient, MultiplexedChannel, unary } from '@yoco/rpc';
import { benchStore, machineInfo, percentile, printTable, timeConcurrently } from './bench-util.js';

const { values } = parseArgs({ options: { subjects: { type: 'string', default: '20000' }, queries: { type: 'string', default: '400' } } });
const SUBJECTS = Number(values.subjects);
const QUERIES = Number(values.queries);
const K = 2;
const D = 3840;
const H = 512;
const ROUNDS = 8;
const log = (m: string) => process.stderr.write(`${m}\n`);

async function main(): Promise<void> {
  const bench = await benchStore('secure', D);
  const rng = new Rng(11);
  log(`writing ${SUBJECTS} subjects (D=${D}) to Redis`);
  const probes: Buffer[] = [];
  await timeConcurrently(SUBJECTS, 32, async (i) => {
    const v = demoVector(rng, D);
    if (i < 64) probes.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    await bench.store.put(`emp-${i}`, [v]);
  });
  const dir = mkdtempSync(join(tmpdir(), 'yoco-bench-pki-'));
  const pki = makeLocalPki(dir);
  const secret = readFileSync(pki.jwtSecretFile, 'utf8');
  // The gateway's token; the launcher's own (it waits on ClusterStatus) is an admin's.
  const token = await mintToken(secret, 'bench', ['identify']);
  const adminToken = await mintToken(secret, 'bench-launcher', ['admin']);
  const env = { YOCO_DIM: String(D), YOCO_HIDDEN: String(H), KERNEL_THREADS: '1', ORT_THREADS: '1' };
  const common = { shards: K, redisUrl: bench.redisUrl, prefix: bench.prefix, env, enroller: false, readyTimeoutMs: 300_000 };
  const setups = [
    { name: 'plaintext', cluster: () => LocalCluster.start({ ...common, logDir: mkdtempSync(join(tmpdir(), 'yoco-bench-')), coordinatorEnv: { HEDGE_DELAY_MS: '0' } }), security: {} },
    {
      name: 'TLS + mTLS',
      cluster: () => LocalCluster.start({ ...common, logDir: mkdtempSync(join(tmpdir(), 'yoco-bench-')), secure: { pki, adminToken }, coordinatorEnv: { HEDGE_DELAY_MS: '0', AUTH_JWT_SECRET_FILE: '' } }),
      security: { tls: { caFile: pki.caFile } },
    },
    {
      name: 'TLS + mTLS + token',
      cluster: () => LocalCluster.start({ ...common, logDir: mkdtempSync(join(tmpdir(), 'yoco-bench-')), secure: { pki, adminToken }, coordinatorEnv: { HEDGE_DELAY_MS: '0' } }),
      security: { tls: { caFile: pki.caFile }, token },
    },
  ];
  const clusters: LocalCluster[] = [];
  const rows: { what: string; setup: string; concurrency: number; p50_ms: number; p99_ms: number; qps: number }[] = [];
  try {
    for (const s of setups) {
      log(`starting the ${s.name} cluster`);
      clusters.push(await s.cluster());
    }
    const ways = setups.map((s, i) => {
      const client = makeClient(loadProtos().Matcher, clusters[i].address, DIRECT_CLIENT_OPTIONS, s.security);
      const stream = new MultiplexedChannel<object, unknown>(client, 'IdentifyStream');
      const request = (n: number) => ({ probe: { vector: { f32le: probes[n % probes.length] } }, topK: 10 });
      return {
        setup: s.name,
        client,
        stream,
        unary: (n: number) => unary(client, 'Identify', request(n), { deadline: Date.now() + 30_000 }),
        streamed: (n: number) => stream.call(request(n), { deadline: Date.now() + 30_000 }),
      };
    });
    for (const w of ways) {
      for (let n = 0; n < 30; n++) {
        await w.unary(n);
        await w.streamed(n);
      }
    }
    for (const [kind, concurrency] of [['Identify', 1], ['IdentifyStream', 1], ['Identify', 16]] as const) {
      log(`${kind} at concurrency ${concurrency}, ${ROUNDS} rounds taking turns`);
      const times = ways.map(() => [] as number[]);
      const seconds = ways.map(() => 0);
      const perRound = Math.ceil((concurrency === 1 ? QUERIES : QUERIES * 2) / ROUNDS);
      for (let round = 0; round < ROUNDS; round++) {
        for (const [i, w] of ways.entries()) {
          const r = await timeConcurrently(perRound, concurrency, (n) => (kind === 'Identify' ? w.unary(n + round * perRound) : w.streamed(n + round * perRound)));
          times[i].push(...r.times);
          seconds[i] += r.seconds;
        }
      }
      for (const [i, w] of ways.entries()) rows.push({ what: kind, setup: w.setup, concurrency, p50_ms: percentile(times[i], 50), p99_ms: percentile(times[i], 99), qps: times[i].length / seconds[i] });
    }
    for (const w of ways) {
      w.stream.close();
      w.client.close();
    }
  } finally {
    for (const c of clusters) await c.stop();
    await bench.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
  const base = (what: string, c: number) => rows.find((r) => r.what === what && r.concurrency === c && r.setup === 'plaintext')!;
  const report = { machine: machineInfo(), subjects: SUBJECTS, k: K, d: D, h: H, rows: rows.map((r) => ({ ...r, p50_over_plaintext_ms: r.p50_ms - base(r.what, r.concurrency).p50_ms })) };
  const file = fileURLToPath(new URL('./results/secure.json', import.meta.url));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  printTable(
    ['what', 'setup', 'concurrency', 'p50 ms', 'p99 ms', 'qps', 'p50 over plaintext'],
    report.rows.map((r) => [r.what, r.setup, String(r.concurrency), r.p50_ms.toFixed(2), r.p99_ms.toFixed(2), r.qps.toFixed(1), `${r.p50_over_plaintext_ms >= 0 ? '+' : ''}${r.p50_over_plaintext_ms.toFixed(2)} ms`]),
  );
  log(`wrote ${file}`);
}

await main();
