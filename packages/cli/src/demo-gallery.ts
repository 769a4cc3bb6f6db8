import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Rng } from '@yoco/common';
import type * as grpc from '@grpc/grpc-js';
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
export async function enrolDemoGallery(client: grpc.Client, dim: number, count: number, probeFile: string, seed = 42): Promise<string> {
  const rng = new Rng(seed);
  const pick = Math.floor(count / 3);
  const records: EnrolRecord[] = [];
  for (let i = 0; i < count; i++) {
    records.push({ subjectId: `demo-${String(i).padStart(5, '0')}`, vectors: Array.from({ length: 1 + (i % 2) }, () => demoVector(rng, dim)) });
  }
  const target = records[pick];
  const probe = target.vectors[0].map((x) => x + (0.2 * rng.normal()) / Math.sqrt(dim));
  const summary = await bulkEnrol(client, records, count, 16, 'demo gallery');
  const failed = [...summary.failed, ...(await waitForJobs(client, summary.jobs))];
  if (failed.length > 0) throw new Error(`demo enrolment failed for ${failed.length} subjects, e.g. ${JSON.stringify(failed[0])}`);
  mkdirSync(dirname(probeFile), { recursive: true });
  writeFileSync(probeFile, JSON.stringify({ subject_id: target.subjectId, vector: Array.from(probe) }) + '\n');
  return target.subjectId;
}
