import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { forEachConcurrently } from '@yoco/common';
import { calibrateThreshold, scoreMatrix, type Calibration, type LabelledSet } from '@yoco/eval';
import type { PROFILES } from '@yoco/models';
import { localCluster } from '../cluster-file.js';
import { imageFolders, readLabelled } from '../labelled-input.js';
import { matcherClient } from '../matcher-client.js';
import { startingHead } from './train.js';

export interface CalibrateCommandOptions {
  address: string;
  fpir: number;
  impostors: string;
  gallerySize?: number;
  out?: string;
  /** In-process: the gallery's vectors (JSON Lines) and the head, instead of the running cluster. */
  gallery?: string;
  head?: string;
  profile: keyof typeof PROFILES;
  concurrency: number;
  json: boolean;
}

export type ImpostorProbe = { subject: string; probe: { image: Buffer } | { vector: { f32le: Buffer } } };
export interface Searches {
  tops: number[];
  gallerySize: number;
  headId: string;
  /** Impostor subjects found at the top under their own id: enrolled after all. */
  mated: string[];
}

/**
 * Every impostor probe searched through Identify (top 1, any score): its top
 * score, the gallery size searched, and which "impostors" were in fact found
 * under their own id.
 */
export async function impostorSearches(identify: (probe: ImpostorProbe['probe']) => Promise<{ gallerySize: number | string; matches: { subjectId: string; score: number }[] }>, probes: ImpostorProbe[], concurrency: number, headId: string): Promise<Searches> {
  const tops: number[] = new Array(probes.length);
  const mated: string[] = [];
  let gallerySize = 0;
  await forEachConcurrently(probes, concurrency, async (p, i) => {
    const res = await identify(p.probe);
    gallerySize = Math.max(gallerySize, Number(res.gallerySize));
    const top = res.matches[0];
    if (top && top.subjectId === p.subject) mated.push(p.subject);
    tops[i] = top ? top.score : 0;
  });
  return { tops, gallerySize, headId, mated };
}

/** Labelled probes from a file (vectors) or a folder of image folders (sent as images: the cluster's embedder makes them vectors, as for a gate). */
export async function labelledProbes(path: string, profile: keyof typeof PROFILES): Promise<ImpostorProbe[]> {
  const probes: ImpostorProbe[] = [];
  if (statSync(path).isDirectory()) {
    for (const [subject, files] of imageFolders(path)) for (const f of files) probes.push({ subject, probe: { image: readFileSync(f) } });
    return probes;
  }
  const set = await readLabelled(path, profile);
  for (let i = 0; i < set.count; i++) {
    const v = set.vector(i);
    probes.push({ subject: set.subjects[i], probe: { vector: { f32le: Buffer.from(v.buffer, v.byteOffset, v.byteLength) } } });
  }
  return probes;
}

async function clusterSearches(o: CalibrateCommandOptions): Promise<Searches> {
  const client = matcherClient(o.address);
  try {
    const status = await client.call('ClusterStatus', {}, { timeoutMs: 10_000 });
    return await impostorSearches((probe) => client.call('Identify', { probe, topK: 1, threshold: 0 }, { timeoutMs: 30_000 }), await labelledProbes(o.impostors, o.profile), o.concurrency, status.headId);
  } finally {
    client.close();
  }
}

/** The same in this process: each impostor against the gallery file's vectors through a real scorer. */
async function localSearches(o: CalibrateCommandOptions): Promise<Searches> {
  const gallery: LabelledSet = await readLabelled(o.gallery!, o.profile);
  const head = await startingHead(o.profile, gallery, o.head);
  const impostors = await readLabelled(o.impostors, o.profile);
  const enrolled = new Set(gallery.subjects);
  const mated = [...new Set(impostors.subjects.filter((s) => enrolled.has(s)))];
  const m = await scoreMatrix(head, gallery, impostors);
  const tops = Array.from({ length: impostors.count }, (_, p) => {
    let best = 0;
    for (let g = 0; g < gallery.count; g++) best = Math.max(best, m[p * gallery.count + g]);
    return best;
  });
  return { tops, gallerySize: gallery.count, headId: head.id, mated };
}

/**
 * `yoco calibrate --fpir F --impostors FILE|DIR`: the threshold that holds
 * FPIR at F, from 1:N searches of people not enrolled (their top score),
 * written where the coordinator reads it (THRESHOLD_FILE; npm start's is
 * <data dir>/threshold.json, picked up within a second).
 */
export async function calibrate(o: CalibrateCommandOptions): Promise<Calibration> {
  const searched = o.gallery ? await localSearches(o) : await clusterSearches(o);
  return finishCalibration(searched, o, o.gallery ? `in-process: ${o.impostors} against ${o.gallery}` : `cluster ${o.address}: ${o.impostors}`);
}

/** The threshold from the searches, written to out (or the local cluster's THRESHOLD_FILE) and reported. */
export function finishCalibration(searched: Searches, o: Pick<CalibrateCommandOptions, 'fpir' | 'gallerySize' | 'out' | 'gallery' | 'json'>, source: string): Calibration {
  if (searched.mated.length > 0) {
    throw new Error(`${searched.mated.length} impostor subject(s) are enrolled (${searched.mated.slice(0, 3).join(', ')}${searched.mated.length > 3 ? ', ...' : ''}): calibration needs searches for people who are not in the gallery`);
  }
  if (searched.gallerySize === 0) throw new Error('the gallery is empty: enrol first, or give --gallery-size with --gallery');
  const c = calibrateThreshold(searched.tops, searched.gallerySize, { fpir: o.fpir, gallerySize: o.gallerySize, headId: searched.headId, source });
  const dataDir = localCluster() ? resolve(process.env.YOCO_DATA_DIR || '.yoco') : undefined;
  const out = o.out ?? (dataDir && !o.gallery ? resolve(dataDir, 'threshold.json') : undefined);
  if (out) {
    writeFileSync(`${out}.tmp`, `${JSON.stringify(c, null, 2)}\n`);
    renameSync(`${out}.tmp`, out);
  }
  if (o.json) console.log(JSON.stringify({ ...c, file: out ?? null }, null, 2));
  else {
    const m = c.measured;
    console.log(`threshold ${c.threshold.toPrecision(6)} holds FPIR ${c.fpir} at gallery size ${c.gallery_size}${c.extrapolated ? ` (extrapolated from ${c.searched_gallery_size}: FPIR ${c.searched_fpir.toPrecision(3)} per search there)` : ''}`);
    console.log(`  from ${c.searches} non-mated searches: ${m.count} at or above it, FPIR ${(m.rate * 100).toFixed(3)}% [95% ${(m.ci95[0] * 100).toFixed(3)}, ${(m.ci95[1] * 100).toFixed(3)}]`);
    console.log(out ? `  written to ${out}${dataDir && out.startsWith(dataDir) ? ' (the local coordinator reads it within a second)' : ''}` : '  not written (no --out, and no npm start here)');
  }
  return c;
}
