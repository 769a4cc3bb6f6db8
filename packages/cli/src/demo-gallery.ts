import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unary, type v1 } from '@yoco/rpc';
import sharp from 'sharp';
import { Rng } from '@yoco/common';
import { bulkEnrol, waitForJobs, type EnrolRecord } from './bulk-enrol.js';

/** A seeded demo subject's vector: unit length, as the backbone's normalised features are. */
export function demoVector(rng: Rng, dim: number): Float32Array {
  const v = rng.normals(dim);
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  return v.map((x) => x / norm);
}

/**
 * Enrols `count` demo subjects (demo-00000 ...) with 1-2 templates each
 * through the Matcher, waits until every job is applied, and writes a probe
 * file: a noisy copy of one subject's first template.
 */
export async function enrolDemoGallery(client: v1.MatcherClient, dim: number, count: number, probeFile: string, seed = 42): Promise<string> {
  const rng = new Rng(seed);
  const pick = Math.floor(count / 3);
  const records: EnrolRecord[] = [];
  for (let i = 0; i < count; i++) {
    records.push({ subjectId: `demo-${String(i).padStart(5, '0')}`, vectors: Array.from({ length: 1 + (i % 2) }, () => demoVector(rng, dim)) });
  }
  const target = records[pick];
  const probe = target.vectors[0].map((x) => x + (0.05 * rng.normal()) / Math.sqrt(dim));
  const summary = await bulkEnrol(client, records, count, 16, 'demo gallery');
  const failed = [...summary.failed, ...(await waitForJobs(client, summary.jobs))];
  if (failed.length > 0) throw new Error(`demo enrolment failed for ${failed.length} subjects, e.g. ${JSON.stringify(failed[0])}`);
  mkdirSync(dirname(probeFile), { recursive: true });
  writeFileSync(probeFile, JSON.stringify({ subject_id: target.subjectId, vector: Array.from(probe) }) + '\n');
  return target.subjectId;
}

/** The committed demo photos (see demo/photos/SOURCES.md). */
export const DEMO_PHOTOS = fileURLToPath(new URL('../../../demo/photos', import.meta.url));

/**
 * An altered copy, as a gate camera would see the same scene again: 80%
 * centre crop, resized, brighter, JPEG quality 45.
 */
export async function alteredCopy(image: Uint8Array): Promise<Buffer> {
  const meta = await sharp(image).metadata();
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  const cw = Math.round(w * 0.8);
  const ch = Math.round(h * 0.8);
  return sharp(image)
    .extract({ left: Math.round((w - cw) / 2), top: Math.round((h - ch) / 2), width: cw, height: ch })
    .resize(Math.round(cw * 1.25))
    .modulate({ brightness: 1.2 })
    .jpeg({ quality: 45 })
    .toBuffer();
}

/** Enrols every photo in `dir` as subject photo-<name> (by image, waiting for each) and writes an altered copy of one. */
export async function enrolDemoPhotos(client: v1.MatcherClient, dir: string, probeFile: string): Promise<string> {
  const files = readdirSync(dir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort();
  let target = '';
  for (const [i, f] of files.entries()) {
    const subjectId = `photo-${f.replace(/\.[^.]+$/, '')}`;
    const image = readFileSync(join(dir, f));
    await unary(client, 'Enrol', { subjectId, probes: [{ image }], replace: true, wait: true }, { deadline: Date.now() + 60_000 });
    if (i === Math.floor(files.length / 2)) {
      target = subjectId;
      mkdirSync(dirname(probeFile), { recursive: true });
      writeFileSync(probeFile, await alteredCopy(image));
    }
  }
  return target;
}
