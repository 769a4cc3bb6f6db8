/**
 * What a shard process holds per template, and how many templates one shard
 * process can hold, per profile (the factorized engine):
 * - memory per 10000 templates: a slice of 10000, then every one replaced
 *   (20000 rows, half dead), then compacted (the slice swap the follower
 *   makes once dead rows pass a quarter). Counted: the scorer's rows (wasm
 *   memory) and the slice's bookkeeping (JS heap after a full GC); the raw
 *   vectors are not kept and not counted.
 * - capacity: the rows a factorized scorer takes before it refuses more
 *   (wasm32's 4 GiB), checked in a process of its own by filling one to the
 *   brim and adding one more, with the RSS it then has.
 * `npm run bench:memory` (`-- --templates N`, `--no-fill` to skip the fills).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng } from '@yoco/common';
import { GallerySlice, type Template } from '@yoco/gallery';
import { CapacityError, createScorer, metricHead, type Scorer } from '@yoco/head';
import { PROFILES } from '@yoco/models';
import { machineInfo, printTable } from './bench-util.js';

const { values } = parseArgs({ options: { templates: { type: 'string', default: '10000' }, 'no-fill': { type: 'boolean', default: false }, fill: { type: 'string' } } });
const N = Number(values.templates);
const MB = 1024 * 1024;
const log = (m: string) => process.stderr.write(`${m}\n`);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:memory does)');
const profiles = [PROFILES['resnet50-ms3840'], PROFILES['face-resnet128']];

async function settle(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 50));
  }
  return process.memoryUsage();
}

const wasmBytes = (s: Scorer) => (s as unknown as { memoryBytes: number }).memoryBytes;

function batch(tag: string, from: number, n: number, dim: number, rng: Rng): Template[] {
  return Array.from({ length: n }, (_, j) => ({ subjectId: `s-${from + j}`, templateId: `${tag}-${from + j}`, vector: rng.normals(dim, 1 / Math.sqrt(dim)) }));
}

/** Fills one scorer of the profile's shape to capacity; prints {rows, refused, rssMb, wasmMb}. */
async function fill(profileId: string): Promise<void> {
  const profile = profiles.find((p) => p.id === profileId)!;
  const head = metricHead({ dim: profile.dim, hidden: profile.headHidden ?? 512 });
  const scorer = await createScorer(head, { engine: 'factorized', kernelThreads: 1 });
  const before = (await settle()).rss;
  const capacity = scorer.capacity;
  // Rows written straight into the kernel (projecting millions of vectors would take hours), the scorer's
  // bookkeeping set to match (private fields; a bench may); what is measured is where add() says no.
  const inner = scorer as unknown as { kernel: { appendZeros(n: number): number }; count: number; liveCount: number; grow(n: number): void };
  for (let left = capacity - 1; left > 0; ) {
    const n = Math.min(left, 1 << 20);
    inner.kernel.appendZeros(n);
    left -= n;
  }
  inner.grow(capacity);
  inner.count = capacity - 1;
  inner.liveCount = capacity - 1;
  scorer.add(new Float32Array(profile.dim));
  let refused = false;
  try {
    scorer.add(new Float32Array(profile.dim));
  } catch (err) {
    refused = err instanceof CapacityError;
  }
  await scorer.flush();
  const after = (await settle()).rss;
  console.log(JSON.stringify({ rows: scorer.size, refused, rssMb: (after - before) / MB, wasmMb: wasmBytes(scorer) / MB }));
  process.exit(0);
}

if (values.fill) await fill(values.fill);

const rows: Record<string, string | number>[] = [];
const capacities: Record<string, unknown>[] = [];
for (const profile of profiles) {
  const dim = profile.dim;
  const hidden = profile.headHidden ?? 512;
  const head = metricHead({ dim, hidden });
  const rng = new Rng(1);
  log(`${profile.id}: D=${dim}, H=${hidden}, ${N} templates`);
  let slice = new GallerySlice(await createScorer(head, { engine: 'factorized' }));
  const empty = await settle();
  const point = async (what: string) => {
    const m = await settle();
    rows.push({
      profile: profile.id,
      what,
      rows: slice.rows,
      templates: slice.templates,
      wasm_mb_per_10k: (wasmBytes(slice.scorer) / N) * 10_000 / MB,
      heap_mb_per_10k: (((m.heapUsed - empty.heapUsed) / N) * 10_000) / MB,
      rss_mb_per_10k: (((m.rss - empty.rss) / N) * 10_000) / MB,
    });
  };
  // In batches, as a load does: only one batch of raw vectors is alive at a time.
  for (let i = 0; i < N; i += 1000) slice.add(batch('a', i, Math.min(1000, N - i), dim, rng));
  await slice.scorer.flush();
  await point(`${N} templates`);
  // Every subject replaced: a removal and an add each, as a stream of replaces does.
  for (let i = 0; i < N; i += 1000) {
    const n = Math.min(1000, N - i);
    slice.remove(Array.from({ length: n }, (_, j) => `a-${i + j}`));
    slice.add(batch('b', i, n, dim, rng));
  }
  await slice.scorer.flush();
  await point(`all replaced (${slice.dead} dead rows)`);
  const old = slice;
  slice = old.compact();
  await old.close();
  await point('after compaction');
  const capacity = slice.scorer.capacity;
  await slice.close();
  if (!values['no-fill']) {
    log(`  filling a scorer to its ${capacity} rows in a process of its own`);
    const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--fill', profile.id], { encoding: 'utf8' });
    const f = JSON.parse(out.trim().split('\n').at(-1)!) as { rows: number; refused: boolean; rssMb: number; wasmMb: number };
    capacities.push({ profile: profile.id, capacity, ...f });
  } else capacities.push({ profile: profile.id, capacity });
}

const report = { machine: machineInfo(), templates: N, engine: 'factorized', results: rows, capacity: capacities };
const file = fileURLToPath(new URL('./results/memory.json', import.meta.url));
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
const f1 = (x: unknown) => Number(x).toFixed(1);
printTable(
  ['profile', 'what', 'rows', 'wasm MB per 10k', 'JS heap MB per 10k', 'RSS MB per 10k'],
  rows.map((r) => [String(r.profile), String(r.what), String(r.rows), f1(r.wasm_mb_per_10k), f1(r.heap_mb_per_10k), f1(r.rss_mb_per_10k)]),
);
console.log('');
printTable(
  ['profile', 'capacity (rows)', 'filled', 'next add refused', 'RSS at capacity (MB)'],
  capacities.map((c) => [String(c.profile), String(c.capacity), String(c.rows ?? '-'), String(c.refused ?? '-'), c.rssMb === undefined ? '-' : f1(c.rssMb)]),
);
console.log(`wrote ${file}`);
