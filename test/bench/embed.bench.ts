/**
 * The embedder over gRPC, per profile: images per second and p50/p99 per
 * image at batch 1 (one call at a time, no batching) and with the batcher
 * (16 concurrent callers) at each max batch size; the best is marked.
 * `npm run bench:embed`. Images: the demo photos (real JPEGs, 256 px).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_PHOTOS } from '@yoco/cli';
import { readEmbedderConfig, EmbedderWorker } from '@yoco/embedder';
import { PROFILES } from '@yoco/models';
import { createLogger, loadProtos, makeClient, unary } from '@yoco/rpc';
import { machineInfo, percentile, printTable, timeConcurrently } from './bench-util.js';

const IMAGES = readdirSync(DEMO_PHOTOS)
  .filter((f) => f.endsWith('.jpg'))
  .map((f) => readFileSync(join(DEMO_PHOTOS, f)));
const PER_RUN = 96;

interface Row {
  profile: string;
  setting: string;
  concurrency: number;
  images_per_s: number;
  p50_ms: number;
  p99_ms: number;
  best?: boolean;
}

async function run(profile: string, maxBatch: number, concurrency: number): Promise<Row> {
  const config = { ...readEmbedderConfig({}), profile, grpcAddress: '127.0.0.1:0', maxBatch, maxQueueDelayMs: maxBatch === 1 ? 0 : 5 };
  const worker = new EmbedderWorker(config, createLogger('bench', 'warn'));
  await worker.start();
  const client = makeClient(loadProtos().Embedder, `127.0.0.1:${worker.port}`);
  const embed = (i: number) => unary(client, 'Embed', { images: [IMAGES[i % IMAGES.length]] }, { deadline: Date.now() + 60_000 });
  for (let i = 0; i < 8; i++) await embed(i);
  const { times, seconds } = await timeConcurrently(PER_RUN, concurrency, embed);
  client.close();
  await worker.stop();
  return {
    profile,
    setting: maxBatch === 1 ? 'batch 1' : `batcher, max batch ${maxBatch}`,
    concurrency,
    images_per_s: PER_RUN / seconds,
    p50_ms: percentile(times, 50),
    p99_ms: percentile(times, 99),
  };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  for (const profile of Object.keys(PROFILES)) {
    process.stderr.write(`${profile}: batch 1\n`);
    rows.push(await run(profile, 1, 1));
    const batched: Row[] = [];
    for (const maxBatch of [4, 8, 16]) {
      process.stderr.write(`${profile}: batcher, max batch ${maxBatch}\n`);
      batched.push(await run(profile, maxBatch, 16));
    }
    const best = batched.reduce((a, b) => (b.images_per_s > a.images_per_s ? b : a));
    best.best = true;
    rows.push(...batched);
  }
  const file = fileURLToPath(new URL('./results/embed.json', import.meta.url));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ machine: machineInfo(), images: `${IMAGES.length} demo photos, ${PER_RUN} calls per row`, results: rows }, null, 2) + '\n');
  printTable(
    ['profile', 'setting', 'callers', 'images/s', 'p50 ms', 'p99 ms'],
    rows.map((r) => [r.profile, r.setting + (r.best ? ' (best)' : ''), String(r.concurrency), r.images_per_s.toFixed(1), r.p50_ms.toFixed(1), r.p99_ms.toFixed(1)]),
  );
  console.log(`wrote ${file}`);
}

await main();
