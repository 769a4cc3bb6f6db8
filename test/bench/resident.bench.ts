/**
 * The resident engine (P sealed into ONNX Runtime sessions) beside the float32
 * wasm scan, one query at a time: `npm run bench:resident -- [--n=50000]
 * [--segment=65536]`, with ORT_PROVIDERS=cuda on a GPU machine (the shard's
 * own provider check runs first: a run that fell back to CPU stops). Both
 * engines' top-10 are compared on every query. Writes
 * test/bench/results/resident-<provider>.json and prints a table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@yoco/common';
import { assertProviders, createScorer, metricHead, type Scorer } from '@yoco/head';
import { machineInfo, median, percentile, printTable } from './bench-util.js';

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const N = arg('n', 50000);
const SEGMENT = arg('segment', 65536);
const QUERIES = 20;
const providers = (process.env.ORT_PROVIDERS ?? '').split(',').filter(Boolean);

async function main(): Promise<void> {
  await assertProviders(providers);
  const head = metricHead();
  const d = head.dim;
  const rng = new Rng(N);
  const queries: Float32Array[] = [];
  const engines: [string, Scorer][] = [
    ['factorized', await createScorer(head, { engine: 'factorized' })],
    ['resident', await createScorer(head, { engine: 'resident', executionProviders: providers, resident: { segmentRows: SEGMENT } })],
  ];
  // Rows added in blocks (the raw vectors are not kept): a million at 3840 floats would not fit twice.
  const BLOCK = 10000;
  for (let start = 0; start < N; start += BLOCK) {
    const m = Math.min(BLOCK, N - start);
    const rows = rng.normals(m * d, 1 / Math.sqrt(d));
    for (let i = 0; i < Math.ceil(QUERIES * m / N) && queries.length < QUERIES; i++) {
      const q = rows.slice(i * d, (i + 1) * d);
      for (let c = 0; c < d; c++) q[c] += 0.3 * rng.normal() / Math.sqrt(d);
      queries.push(q);
    }
    for (const [, s] of engines) s.add(rows);
    await Promise.all(engines.map(([, s]) => s.flush()));
  }
  const rows: { method: string; n: number; median_ms: number; p95_ms: number; top10_agreement?: number }[] = [];
  const answers = new Map<string, string[]>();
  for (const [name, s] of engines) {
    for (let i = 0; i < 3; i++) await s.search(queries[i], 10);
    const times: number[] = [];
    const seen: string[] = [];
    for (const q of queries) {
      const t = performance.now();
      const got = await s.search(q, 10);
      times.push(performance.now() - t);
      seen.push(got.map((m) => m.index).join());
    }
    answers.set(name, seen);
    rows.push({ method: name, n: N, median_ms: median(times), p95_ms: percentile(times, 95) });
    await s.close();
  }
  const f32 = answers.get('factorized')!;
  rows[1].top10_agreement = answers.get('resident')!.filter((a, i) => a === f32[i]).length / f32.length;
  const provider = providers.find((p) => p !== 'cpu') ?? 'cpu';
  const file = fileURLToPath(new URL(`./results/resident-${provider}.json`, import.meta.url));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ machine: machineInfo(), providers: providers.length ? providers : ['cpu'], segment_rows: SEGMENT, queries: QUERIES, results: rows }, null, 2) + '\n');
  printTable(['method', 'n', 'median ms', 'p95 ms', 'top10 agreement'], rows.map((r) => [r.method, String(r.n), r.median_ms.toFixed(3), r.p95_ms.toFixed(3), r.top10_agreement === undefined ? '' : r.top10_agreement.toFixed(3)]));
  console.log(`providers: ${providers.join(',') || 'cpu'}; wrote ${file}`);
}

await main();
