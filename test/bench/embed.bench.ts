/**
 * The embedder over gRPC, per profile: images per second and p50/p99 per
 * image at batch 1 (one call at a time, no batching) and with the batcher
 * (16 concurrent callers) at each max batch size; the best is marked.
 * `npm run bench:embed`. Images: the demo photos (real JPEGs, 256 px), which
 * the face profile takes as face crops (FACE_CROP=none); and for its frame
 * pipeline (detector, landmarks, aligned crop, descriptor) face-api's six
 * 1920 px group photos, the largest face each.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DEMO_PHOTOS } from '@yoco/cli';
import { readEmbedderConfig, EmbedderWorker } from '@yoco/embedder';
import { createLogger, loadProtos, makeClient, unary } from '@yoco/rpc';
import { machineInfo, percentile, printTable, timeConcurrently } from './bench-util.js';

const IMAGES = readdirSync(DEMO_PHOTOS)
  .filter((f) => f.endsWith('.jpg'))
  .map((f) => readFileSync(join(DEMO_PHOTOS, f)));
const require = createRequire(import.meta.url);
const SAMPLES = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');
const FRAMES = [1, 2, 3, 4, 5, 6].map((n) => readFileSync(join(SAMPLES, `sample${n}.jpg`)));
const PER_RUN = 96;

/** What each row runs: a profile, and for the face profile whether it looks for faces. */
const CASES = [
  { profile: 'resnet50-ms3840', label: 'resnet50-ms3840', faceCrop: 'none', images: IMAGES },
  { profile: 'face-resnet128', label: 'face-resnet128, crops (FACE_CROP=none)', faceCrop: 'none', images: IMAGES },
  { profile: 'face-resnet128', label: 'face-resnet128, 1920 px frames (aligned)', faceCrop: 'aligned', images: FRAMES },
] as const;

interface Row {
  profile: string;
  setting: string;
  concurrency: number;
  images_per_s: number;
  p50_ms: number;
  p99_ms: number;
  best?: boolean;
}

async function run(c: (typeof CASES)[number], maxBatch: number, concurrency: number): Promise<Row> {
  const config = { ...readEmbedderConfig({}), profile: c.profile, faceCrop: c.faceCrop, grpcAddress: '127.0.0.1:0', maxBatch, maxQueueDelayMs: maxBatch === 1 ? 0 : 5 };
  const IMAGES = c.images;
  const worker = new EmbedderWorker(config, createLogger('bench', 'warn'));
  await worker.start();
  const client = makeClient(loadProtos().Embedder, `127.0.0.1:${worker.port}`);
  const embed = (i: number) => unary(client, 'Embed', { images: [IMAGES[i % IMAGES.length]] }, { deadline: Date.now() + 60_000 });
  for (let i = 0; i < 8; i++) await embed(i);
  const { times, seconds } = await timeConcurrently(PER_RUN, concurrency, embed);
  client.close();
  await worker.stop();
  return {
    profile: c.label,
    setting: maxBatch === 1 ? 'batch 1' : `batcher, max batch ${maxBatch}`,
    concurrency,
    images_per_s: PER_RUN / seconds,
    p50_ms: percentile(times, 50),
    p99_ms: percentile(times, 99),
  };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  for (const c of CASES) {
    process.stderr.write(`${c.label}: batch 1\n`);
    rows.push(await run(c, 1, 1));
    const batched: Row[] = [];
    for (const maxBatch of [4, 8, 16]) {
      process.stderr.write(`${c.label}: batcher, max batch ${maxBatch}\n`);
      batched.push(await run(c, maxBatch, 16));
    }
    const best = batched.reduce((a, b) => (b.images_per_s > a.images_per_s ? b : a));
    best.best = true;
    rows.push(...batched);
  }
  const file = fileURLToPath(new URL('./results/embed.json', import.meta.url));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ machine: machineInfo(), images: `${IMAGES.length} demo photos (face crops for FACE_CROP=none); frames: face-api's ${FRAMES.length} sample photos; ${PER_RUN} calls per row`, results: rows }, null, 2) + '\n');
  printTable(
    ['profile', 'setting', 'callers', 'images/s', 'p50 ms', 'p99 ms'],
    rows.map((r) => [r.profile, r.setting + (r.best ? ' (best)' : ''), String(r.concurrency), r.images_per_s.toFixed(1), r.p50_ms.toFixed(1), r.p99_ms.toFixed(1)]),
  );
  console.log(`wrote ${file}`);
}

await main();
