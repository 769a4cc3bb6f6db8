/**
 * The head benchmark: every way of scoring one probe against a gallery, side
 * by side in one run. `npm run bench:head` (N = 1491 and 50000) or
 * `npm run bench:head -- --quick` (N = 1491 only). int8 is timed beside
 * float32 twice: the scorer's row-level search (int8 vs factorized) and a
 * slice's subject-level search, where a shard uses it (int8-slice vs
 * factorized-slice), each with the fraction of queries whose top-10 equals
 * float32's (the slice's over AGREEMENT_QUERIES queries), and as batches of
 * BATCH_QUERIES concurrent queries sharing one pass (the *-batch16 rows, per
 * query). Beside them: the memory-read floor of each engine's rows (a plain
 * read of the same bytes by the same threads), and FAISS IndexFlatIP over the
 * raw vectors (Debian's python3-faiss, skipped with a note when it is not
 * installed). Writes test/bench/results/head.json and prints a table.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import { Rng } from '@yoco/common';
import { GallerySlice } from '@yoco/gallery';
import { createScorer, headToOnnx, loadHead, metricHead, ReadFloor, ReferenceScorer, type Head, type Scorer } from '@yoco/head';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { machineInfo, median, percentile, printTable } from './bench-util.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const headPath = args.find((a) => a.startsWith('--head='))?.slice('--head='.length);
const SIZES = quick ? [1491] : [1491, 50000];
const QUERIES = 20;
const BATCH = 256;
const BLOCK = 1024;
/** Pairs timed per query for the per-pair loop at large N; the rest is extrapolated. */
const LOOP_SAMPLE = 400;
/** Queries (untimed) over which int8's slice answers are compared with float32's. */
const AGREEMENT_QUERIES = 1000;
/** Side-by-side rounds of the row-level and slice searches: each method, in turn, ROUND queries in a row. */
const SIDE_ROUNDS = 24;
const ROUND = 10;
/** Concurrent queries in a batch row (a shard's SEARCH_MAX_BATCH default). */
const BATCH_QUERIES = 16;
const BATCH_ROUNDS = 6;

type Method =
  | 'loop' | 'batched' | 'yoco' | 'yoco-blocks' | 'factorized' | 'int8' | 'factorized-slice' | 'int8-slice'
  | 'factorized-slice-batch16' | 'int8-slice-batch16' | 'read-floor-f32-rows' | 'read-floor-8bit-rows' | 'faiss-flat-ip';

/** Rows that are not the head's scores: no check against the reference. */
const UNCHECKED = new Set<Method>(['factorized-slice-batch16', 'int8-slice-batch16', 'read-floor-f32-rows', 'read-floor-8bit-rows', 'faiss-flat-ip']);

interface Row {
  method: Method;
  n: number;
  d: number;
  h: number;
  median_ms: number;
  p95_ms: number;
  speedup_vs_yoco: number;
  max_abs_diff: number;
  top10_match: boolean | null;
  /** int8: the fraction of queries whose top-10 (subjects, templates, scores) equals the float32 slice's. */
  top10_agreement?: number;
  /** The queries top10_agreement is over. */
  agreement_queries?: number;
  /** Scorer memory (wasm) per template: both copies of P for int8. */
  bytes_per_template?: number;
  /** Batch rows: queries per second against the single-query row of the same engine. */
  throughput_vs_single?: number;
  note?: string;
}

/** Probabilities a method produced for the rows it scored (all rows, or a sample for the extrapolated loop). */
type Scores = Map<number, number>;

interface Timed {
  times: number[];
  agreement?: number;
  agreementQueries?: number;
  bytesPerTemplate?: number;
  throughputVsSingle?: number;
  /** Scores for the check query (the first timed one). */
  scores: Scores;
  top10: number[] | null;
  note?: string;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function top10(scores: Scores): number[] {
  return [...scores.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 10).map(([i]) => i);
}

async function timeQueries(queries: Float32Array[], warmup: number, run: (q: Float32Array) => Promise<Scores>): Promise<Timed> {
  for (let i = 0; i < warmup; i++) await run(queries[i % queries.length]);
  const times: number[] = [];
  let scores: Scores = new Map();
  for (let i = 0; i < queries.length; i++) {
    const t = performance.now();
    const s = await run(queries[i]);
    times.push(performance.now() - t);
    if (i === 0) scores = s;
  }
  return { times, scores, top10: top10(scores) };
}

/** Figs. 4 and 5: the head in its dense form over [pairs, 2D]; loop = one pair per run. */
async function pairSession(head: Head): Promise<InferenceSession> {
  return InferenceSession.create(headToOnnx(head, { form: 'dense', sigmoid: true }), {
    intraOpNumThreads: 0,
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
}

async function runPairs(session: InferenceSession, q: Float32Array, rows: Float32Array, ids: number[], batch: number, d: number): Promise<Scores> {
  const out: Scores = new Map();
  const buf = new Float32Array(batch * 2 * d);
  for (let start = 0; start < ids.length; start += batch) {
    const m = Math.min(batch, ids.length - start);
    for (let j = 0; j < m; j++) {
      const i = ids[start + j];
      buf.set(q, j * 2 * d);
      buf.set(rows.subarray(i * d, (i + 1) * d), j * 2 * d + d);
    }
    const r = await session.run({ pair: new Tensor('float32', buf.subarray(0, m * 2 * d), [m, 2 * d]) });
    const s = r.score.data as Float32Array;
    for (let j = 0; j < m; j++) out.set(ids[start + j], s[j]);
  }
  return out;
}

async function scorerScores(scorer: Scorer, q: Float32Array): Promise<Scores> {
  const logits = await scorer.logits(q);
  const out: Scores = new Map();
  for (let i = 0; i < logits.length; i++) out.set(i, sigmoid(logits[i]));
  return out;
}

/** A probe as a gate camera's would be: a noisy copy of a gallery row. */
function noisyCopy(rows: Float32Array, rng: Rng, n: number, d: number): Float32Array {
  const src = rng.int(n);
  const q = rows.slice(src * d, (src + 1) * d);
  for (let c = 0; c < d; c++) q[c] += 0.3 * rng.normal() / Math.sqrt(d);
  return q;
}

/** FAISS IndexFlatIP over the raw vectors (python3-faiss), or a note saying why not. */
function faissRow(rows: Float32Array, queries: Float32Array[], d: number): Timed {
  const python = '/usr/bin/python3';
  const probe = spawnSync(python, ['-c', 'import faiss'], { encoding: 'utf8' });
  if (probe.status !== 0) return { times: [NaN], scores: new Map(), top10: null, note: 'skipped: python3-faiss is not installed (apt-get install python3-faiss)' };
  const dir = mkdtempSync(join(tmpdir(), 'yoco-faiss-'));
  try {
    writeFileSync(join(dir, 'rows.f32'), Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength));
    const qs = new Float32Array(queries.length * d);
    queries.forEach((q, i) => qs.set(q, i * d));
    writeFileSync(join(dir, 'queries.f32'), Buffer.from(qs.buffer));
    const script = fileURLToPath(new URL('./faiss-flat.py', import.meta.url));
    const r = spawnSync(python, [script, join(dir, 'rows.f32'), join(dir, 'queries.f32'), String(d), '10'], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) return { times: [NaN], scores: new Map(), top10: null, note: `skipped: faiss-flat.py failed: ${r.stderr.trim().split('\n').pop()}` };
    const got = JSON.parse(r.stdout) as { times: number[]; threads: number; version: string };
    return { times: got.times, scores: new Map(), top10: null, note: `FAISS ${got.version} IndexFlatIP over the raw ${d}-wide vectors, ${got.threads} threads (inner product, not the head)` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchSize(head: Head, n: number): Promise<Row[]> {
  const d = head.dim;
  const rng = new Rng(n);
  // Unit-norm gallery rows; probes are noisy copies of gallery rows, as a gate camera's would be.
  const rows = rng.normals(n * d, 1 / Math.sqrt(d));
  const queries = Array.from({ length: QUERIES }, () => noisyCopy(rows, rng, n, d));
  const all = Array.from({ length: n }, (_, i) => i);
  const results = new Map<Method, Timed>();
  const log = (m: string) => process.stderr.write(`[N=${n}] ${m}\n`);

  const pairs = await pairSession(head);
  {
    const sample = n <= 2000 ? all : Array.from({ length: LOOP_SAMPLE }, () => rng.int(n));
    log(`loop over ${sample.length} pairs per query${sample.length < n ? ` (extrapolated to ${n})` : ''}`);
    const timed = await timeQueries(queries, 2, (q) => runPairs(pairs, q, rows, sample, 1, d));
    if (sample.length < n) {
      timed.times = timed.times.map((t) => (t * n) / sample.length);
      timed.top10 = null;
      timed.note = `timed on ${sample.length} random pairs per query, extrapolated to N`;
    }
    results.set('loop', timed);
  }
  log(`batched, ${BATCH} pairs per run`);
  results.set('batched', await timeQueries(queries, 2, (q) => runPairs(pairs, q, rows, all, BATCH, d)));
  await pairs.release();

  for (const [method, blockSize] of [
    ['yoco', Infinity],
    ['yoco-blocks', BLOCK],
  ] as const) {
    log(`${method}`);
    const scorer = await createScorer(head, { engine: 'yoco', blockSize });
    scorer.add(rows);
    results.set(method, await timeQueries(queries, 2, (q) => scorerScores(scorer, q)));
    await scorer.close();
  }

  // float32 and int8 side by side, taking turns in rounds of ROUND queries (this machine's speed drifts by up
  // to 2x within minutes, so each engine timed in a block of its own would see other conditions): a scorer's
  // row-level search() (factorized, int8) and a slice's subject-level search over the same rows, where a
  // shard uses it (one subject per row: *-slice), alone and as batches of BATCH_QUERIES (*-batch16, per
  // query). A round's queries follow one another on one engine, as a shard's do; its first is not timed, since
  // it follows another engine's scan, which has just pushed everything of this one's out of the caches (turns
  // query by query timed only such queries, and gave the first and last methods in the order two queries in a
  // row). int8's answers are compared with float32's on every query of the rounds and AGREEMENT_QUERIES more.
  const more = Array.from({ length: AGREEMENT_QUERIES }, () => noisyCopy(rows, rng, n, d));
  const templates = Array.from({ length: n }, (_, i) => ({ subjectId: `s${i}`, templateId: `t${i}`, vector: rows.subarray(i * d, (i + 1) * d) }));
  const engines: { engine: 'factorized' | 'int8'; scorer: Scorer; slice: GallerySlice }[] = [];
  for (const engine of ['factorized', 'int8'] as const) {
    log(`${engine}: adding ${n} rows`);
    const scorer = await createScorer(head, { engine });
    const slice = new GallerySlice(scorer);
    slice.add(templates);
    await scorer.flush();
    engines.push({ engine, scorer, slice });
  }
  const row = (e: (typeof engines)[number]) => (q: Float32Array) => e.scorer.search(q, 10).then((got) => JSON.stringify(got.map((m) => [m.index, m.logit])));
  const sub = (e: (typeof engines)[number]) => (q: Float32Array) => e.slice.search(q, 10).then((got) => JSON.stringify(got.map((m) => [m.templateId, m.logit])));
  const methods: [Method, (q: Float32Array) => Promise<string>][] = [
    ['factorized', row(engines[0])],
    ['int8', row(engines[1])],
    ['factorized-slice', sub(engines[0])],
    ['int8-slice', sub(engines[1])],
  ];
  log(`row-level and slice searches, taking turns in rounds of ${ROUND}`);
  for (let i = 0; i < 10; i++) for (const [, run] of methods) await run(queries[i % queries.length]);
  const times = new Map<Method, number[]>(methods.map(([m]) => [m, []]));
  const seen = new Map<Method, string[]>(methods.map(([m]) => [m, []]));
  const side = Array.from({ length: SIDE_ROUNDS * ROUND }, () => noisyCopy(rows, rng, n, d));
  for (let r = 0; r < SIDE_ROUNDS; r++) {
    // Each round starts the order one method on, so no method runs twice in a row across rounds.
    for (const [m, run] of [...methods.slice(r % methods.length), ...methods.slice(0, r % methods.length)]) {
      for (let j = 0; j < ROUND; j++) {
        const t = performance.now();
        seen.get(m)!.push(await run(side[r * ROUND + j]));
        if (j > 0) times.get(m)!.push(performance.now() - t);
      }
    }
  }
  log(`${AGREEMENT_QUERIES} more queries for the agreement (untimed)`);
  for (const q of more) for (const [m, run] of methods) seen.get(m)!.push(await run(q));
  for (const [m] of methods) {
    const e = engines[m.startsWith('int8') ? 1 : 0];
    const scores = await scorerScores(e.scorer, queries[0]);
    results.set(m, { times: times.get(m)!, scores, top10: top10(scores), ...(m.endsWith('-slice') ? { bytesPerTemplate: (e.scorer as unknown as { memoryBytes: number }).memoryBytes / n } : {}) });
  }
  for (const [f32, i8] of [['factorized', 'int8'], ['factorized-slice', 'int8-slice']] as const) {
    const want = seen.get(f32)!;
    results.get(i8)!.agreement = seen.get(i8)!.filter((a, i) => a === want[i]).length / want.length;
    results.get(i8)!.agreementQueries = want.length;
  }
  log(`batches of ${BATCH_QUERIES}, taking turns`);
  const batch = queries.slice(0, BATCH_QUERIES);
  for (const e of engines) await e.slice.searchMany(batch, 10);
  const perQuery = engines.map(() => [] as number[]);
  for (let r = 0; r < BATCH_ROUNDS; r++) {
    for (const [k, e] of engines.entries()) {
      const t = performance.now();
      await e.slice.searchMany(batch, 10);
      perQuery[k].push((performance.now() - t) / batch.length);
    }
  }
  for (const [k, e] of engines.entries()) {
    const single = results.get(e.engine === 'int8' ? 'int8-slice' : 'factorized-slice')!;
    results.set(`${e.engine}-slice-batch16` as Method, { times: perQuery[k], scores: new Map(), top10: null, throughputVsSingle: median(single.times) / median(perQuery[k]) });
    await e.scorer.close();
  }

  // The floors: the bytes each engine's scan reads (float32 P, and int8 P for int8), read plainly by as many threads.
  for (const [method, rowBytes] of [['read-floor-f32-rows', head.hidden * 4], ['read-floor-8bit-rows', head.hidden]] as const) {
    log(method);
    const floor = new ReadFloor(n, rowBytes, availableParallelism());
    const times: number[] = [];
    for (let i = 0; i < 3; i++) floor.run();
    for (let i = 0; i < QUERIES; i++) {
      const t = performance.now();
      floor.run();
      times.push(performance.now() - t);
    }
    await floor.close();
    results.set(method, { times, scores: new Map(), top10: null, note: `a plain read of ${((n * rowBytes) / 1e6).toFixed(1)} MB (${availableParallelism()} threads)` });
  }
  const faiss = faissRow(rows, queries, d);
  results.set('faiss-flat-ip', faiss);

  // The reference (plain TS, float64, one pair at a time) on the check query: on every row at
  // small N; at large N on the union of every method's top 50 plus a random sample.
  const candidates = new Set<number>();
  if (n <= 2000) all.forEach((i) => candidates.add(i));
  else {
    for (const t of results.values()) [...t.scores.entries()].sort((a, b) => b[1] - a[1]).slice(0, 50).forEach(([i]) => candidates.add(i));
    for (let i = 0; i < 500; i++) candidates.add(rng.int(n));
  }
  log(`reference on ${candidates.size} rows`);
  const q0 = queries[0];
  const truth: Scores = new Map();
  for (const i of candidates) truth.set(i, sigmoid(ReferenceScorer.pairLogit(head, q0, rows.subarray(i * d, (i + 1) * d))));
  const truthTop = top10(truth);

  const yocoMedian = median(results.get('yoco')!.times);
  const out: Row[] = [];
  for (const [method, t] of results) {
    if (UNCHECKED.has(method)) {
      const med = median(t.times);
      out.push({
        method, n, d, h: head.hidden, median_ms: med, p95_ms: t.times.length ? percentile(t.times, 95) : NaN, speedup_vs_yoco: yocoMedian / med, max_abs_diff: NaN, top10_match: null,
        ...(t.throughputVsSingle !== undefined ? { throughput_vs_single: t.throughputVsSingle } : {}),
        ...(t.note ? { note: t.note } : {}),
      });
      continue;
    }
    let diff = 0;
    for (const [i, p] of truth) {
      const got = t.scores.get(i);
      if (got !== undefined) diff = Math.max(diff, Math.abs(got - p));
    }
    const med = median(t.times);
    out.push({
      method,
      n,
      d,
      h: head.hidden,
      median_ms: med,
      p95_ms: percentile(t.times, 95),
      speedup_vs_yoco: yocoMedian / med,
      max_abs_diff: diff,
      top10_match: t.top10 ? t.top10.join() === truthTop.join() : null,
      ...(t.agreement !== undefined ? { top10_agreement: t.agreement, agreement_queries: t.agreementQueries ?? t.times.length } : {}),
      ...(t.bytesPerTemplate !== undefined ? { bytes_per_template: Math.round(t.bytesPerTemplate) } : {}),
      ...(t.note ? { note: t.note } : {}),
    });
  }
  return out;
}

async function main(): Promise<void> {
  const head = headPath ? await loadHead(headPath) : metricHead();
  const results: Row[] = [];
  for (const n of SIZES) results.push(...(await benchSize(head, n)));
  const report = {
    machine: machineInfo(),
    head: { id: head.id, dim: head.dim, hidden: head.hidden, form: head.form, source: headPath ?? 'metricHead() default' },
    queries: QUERIES,
    batch: BATCH,
    block: BLOCK,
    reference_check:
      'max_abs_diff and top10_match compare against the per-pair float64 reference on the first query: every row at N <= 2000; at larger N the union of every method\'s top 50 and 500 random rows',
    results,
  };
  const file = fileURLToPath(new URL('./results/head.json', import.meta.url));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  printTable(
    ['method', 'n', 'median ms', 'p95 ms', 'x vs yoco', 'max |diff|', 'top10', 'top10 agreement', 'B/template', 'x single'],
    results.map((r) => [
      r.method + (r.note ? '*' : ''),
      String(r.n),
      r.median_ms.toFixed(3),
      Number.isNaN(r.p95_ms) ? '' : r.p95_ms.toFixed(3),
      r.speedup_vs_yoco.toFixed(1),
      Number.isNaN(r.max_abs_diff) ? '' : r.max_abs_diff.toExponential(1),
      r.top10_match === null ? 'n/a' : r.top10_match ? 'same' : 'DIFFERENT',
      r.top10_agreement === undefined ? '' : `${r.top10_agreement.toFixed(4)} of ${r.agreement_queries}`,
      r.bytes_per_template === undefined ? '' : String(r.bytes_per_template),
      r.throughput_vs_single === undefined ? '' : r.throughput_vs_single.toFixed(2),
    ]),
  );
  for (const r of results) if (r.note) console.log(`* ${r.method} at N=${r.n}: ${r.note}`);
  console.log(`wrote ${file}`);
}

await main();
