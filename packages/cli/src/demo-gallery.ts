import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Rng } from '@yoco/common';
import { GalleryStore } from '@yoco/gallery';
import { ProgressBar } from './progress-bar.js';

/** A seeded demo subject's vector: unit length, as the backbone's normalised features are. */
export function demoVector(rng: Rng, dim: number): Float32Array {
  const v = rng.normals(dim);
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  return v.map((x) => x / norm);
}

/**
 * Enrols `count` demo subjects (demo-00000 ...) with 1-2 templates each and
 * writes a probe file: a noisy copy of one subject's first template.
 */
export async function loadDemoGallery(store: GalleryStore, count: number, probeFile: string, seed = 42): Promise<string> {
  const rng = new Rng(seed);
  const bar = new ProgressBar(count, 'demo gallery');
  let probeSubject = '';
  const pick = Math.floor(count / 3);
  for (let i = 0; i < count; i++) {
    const id = `demo-${String(i).padStart(5, '0')}`;
    const templates = Array.from({ length: 1 + (i % 2) }, () => demoVector(rng, store.dim));
    await store.put(id, templates);
    if (i === pick) {
      probeSubject = id;
      const probe = templates[0].map((x) => x + (0.2 * rng.normal()) / Math.sqrt(store.dim));
      mkdirSync(dirname(probeFile), { recursive: true });
      writeFileSync(probeFile, JSON.stringify({ subject_id: id, vector: Array.from(probe) }) + '\n');
    }
    bar.tick();
  }
  bar.finish();
  return probeSubject;
}
