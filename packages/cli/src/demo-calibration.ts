import { readdirSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Rng } from '@yoco/common';
import type { Calibration } from '@yoco/eval';
import { unary, type v1 } from '@yoco/rpc';
import { photoBase, photoView, sourceFiles } from '@yoco/train';
import { finishCalibration, impostorSearches, type ImpostorProbe } from './commands/calibrate.js';
import { DEMO_PHOTOS } from './demo-gallery.js';

/** Altered views per stranger: 4 x ~80 strangers clears the 300 searches FPIR 0.01 needs. */
const VIEWS = 4;

/**
 * The first start's threshold for the demo gallery: OpenCV sample photos
 * the demo did not enrol (and face-api's samples), each seen as a gate
 * camera would see a stranger (altered views), searched through the running
 * cluster, images and all. FPIR 0.01, because ~80 strangers give ~320
 * searches and 0.001 would need 3000; `yoco calibrate` does better with
 * more people. Returns undefined when the photos are not installed.
 */
export async function calibrateDemo(client: v1.MatcherClient, thresholdFile: string, log: (m: string) => void): Promise<Calibration | undefined> {
  const started = Date.now();
  const key = (f: string) => basename(f, extname(f)).toLowerCase();
  const enrolled = new Set(readdirSync(DEMO_PHOTOS).map(key));
  const files = [...sourceFiles('opencv-doc').filter((f) => f.includes('/examples/data/') && !enrolled.has(key(f))), ...sourceFiles('npm-samples')];
  if (files.length * VIEWS < 300) return undefined;
  const probes: ImpostorProbe[] = [];
  for (const [i, file] of files.entries()) {
    let base: Buffer;
    try {
      // 320 px is plenty for 224 / 150 px models, and keeps the first start short.
      base = await photoBase(file, 320);
    } catch {
      continue;
    }
    const rng = new Rng(7919 + i);
    for (let v = 0; v < VIEWS; v++) probes.push({ subject: `stranger-${key(file)}`, probe: { image: await photoView(base, rng) } });
  }
  log(`calibrating the threshold for the demo gallery: ${probes.length} searches of ${probes.length / VIEWS} people it does not hold`);
  const status = await unary(client, 'ClusterStatus', {}, { deadline: Date.now() + 10_000 });
  const searched = await impostorSearches((probe) => unary(client, 'Identify', { probe, topK: 1, threshold: 0 }, { deadline: Date.now() + 60_000 }), probes, 8, status.headId ?? '');
  log(`  searched in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return finishCalibration(searched, { fpir: 0.01, out: thresholdFile, json: false }, `npm start: ${probes.length / VIEWS} OpenCV/face-api sample photos the demo did not enrol, ${VIEWS} altered views each`);
}
