/**
 * The photo benchmark (step 10): every photo Debian's gnome-backgrounds,
 * mate-backgrounds, ukui-wallpapers, opencv-doc and visp-images-data install,
 * and face-api's samples, each an identity with 8 views (crop, scale,
 * brightness, JPEG quality, small rotation, flip), embedded with
 * resnet50-ms3840 and split by identity 60/20/20. The metric head and the
 * head `yoco train` makes from the training split are measured side by side
 * on the test split (which neither saw): pair accuracy, FNMR at FMR, rank-1,
 * FNIR at FPIR, each with its count and interval; then a threshold
 * calibrated at FPIR 1e-2 on half the test split's strangers is checked on
 * the other half. Writes test/bench/results/train.json, the DET plot
 * (docs/img/det-photo-benchmark.png) and a table.
 *   npm run bench:train [-- --dir D --epochs N]   (apt-get install gnome-backgrounds
 *   mate-backgrounds ukui-wallpapers visp-images-data opencv-doc first; the set is cached in D)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { calibrateThreshold, clopperPearson, detSvg, evaluate, histogramSvg, svgToPng, type EvaluationReport, type OperatingPoint } from '@yoco/eval';
import { metricHead } from '@yoco/head';
import { PROFILES } from '@yoco/models';
import { buildPhotoSet, HeadTrainer } from '@yoco/train';
import { machineInfo, printTable } from './bench-util.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({ options: { dir: { type: 'string', default: join(ROOT, '.yoco/bench/photo-set') }, epochs: { type: 'string', default: '30' } } });
const log = (m: string) => process.stderr.write(`${m}\n`);

async function main(): Promise<void> {
  const set = await buildPhotoSet({ dir: values.dir!, views: 8, log });
  log(`photo set: ${set.manifest.identities} identities (${JSON.stringify(set.manifest.bySource)}), built in ${(set.manifest.ms / 1000).toFixed(0)} s`);
  const p = PROFILES['resnet50-ms3840'];
  const metric = metricHead({ dim: p.dim, hidden: 512, tau: p.headTau, alpha: p.headAlpha });
  const before = (await evaluate(set.test, metric)).report;
  let last = 0;
  const trainer = new HeadTrainer({
    epochs: Number(values.epochs),
    onProgress: (q) => {
      if (q.validation || Date.now() - last > 10_000) log(`epoch ${q.epoch} step ${q.step}/${q.steps} loss ${q.loss.toFixed(4)}${q.validation ? ` val loss ${q.validation.loss.toFixed(4)} acc ${q.validation.accuracy.toFixed(4)}` : ''}`);
      last = Date.now();
    },
  });
  const trained = await trainer.train(metric, set.train, set.validation);
  const evaluation = await evaluate(set.test, trained.head);
  const after = evaluation.report;

  // Calibrate on half the test split's non-mated searches, check on the other half.
  const tops = Array.from(evaluation.openSet.nonMatedTop);
  const calib = tops.filter((_, i) => i % 2 === 0);
  const held = tops.filter((_, i) => i % 2 === 1);
  const cal = calibrateThreshold(calib, after.identification.gallery_size, { fpir: 0.01, headId: trained.head.id, source: 'bench:train test split, even searches' });
  const heldPass = held.filter((t) => t >= cal.threshold).length;

  const rate = (r: { rate: number; ci95: [number, number]; count: number; total: number }) => `${(r.rate * 100).toFixed(2)}% [${(r.ci95[0] * 100).toFixed(1)}, ${(r.ci95[1] * 100).toFixed(1)}] (${r.count}/${r.total})`;
  const op = (x: OperatingPoint) => (x.measurable ? rate(x.falseNegative!) : `not measurable (${x.note})`);
  const row = (name: string, r: EvaluationReport) => [name, (r.verification.pair_accuracy * 100).toFixed(2) + '%', op(r.verification.at_fmr[0]), op(r.verification.at_fmr[1]), rate(r.identification.rank1), op(r.identification.at_fpir[0]), op(r.identification.at_fpir[1])];
  printTable(['head (test split)', 'pair acc', 'FNMR@FMR 1e-2', 'FNMR@FMR 1e-3', 'rank-1', 'FNIR@FPIR 1e-2', 'FNIR@FPIR 1e-3'], [row('metric', before), row('trained', after)]);
  console.log(`training: ${(trained.ms / 1000).toFixed(1)} s on ${trained.backend}, best epoch ${trained.bestEpoch} of ${trained.history.length - 1}${trained.stoppedEarly ? ' (stopped early)' : ''}`);
  console.log(`calibrated threshold (FPIR 1e-2, gallery ${cal.gallery_size}, ${cal.searches} searches): ${cal.threshold.toPrecision(6)}; held-out searches at or above it: ${heldPass}/${held.length} = ${((heldPass / held.length) * 100).toFixed(2)}% [95% ${clopperPearson(heldPass, held.length).map((x) => (x * 100).toFixed(2)).join(', ')}]`);

  const img = join(ROOT, 'docs/img');
  mkdirSync(img, { recursive: true });
  writeFileSync(join(img, 'det-photo-benchmark.png'), await svgToPng(detSvg([{ name: 'metric head', points: before.verification.curve }, { name: 'trained head', points: after.verification.curve }], `DET, photo benchmark test split (${set.manifest.split.test} identities)`)));
  writeFileSync(join(img, 'scores-photo-benchmark.png'), await svgToPng(histogramSvg(after.histogram, 'Trained head, photo benchmark test split: genuine vs impostor')));
  // The curves stay (200 points each: enough to draw the DET again); the histograms go.
  const strip = ({ histogram: _h, ...r }: EvaluationReport) => r;
  const out = join(ROOT, 'test/bench/results/train.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ machine: machineInfo(), photo_set: set.manifest, training: { ms: Math.round(trained.ms), backend: trained.backend, best_epoch: trained.bestEpoch, epochs_run: trained.history.length - 1, stopped_early: trained.stoppedEarly, history: trained.history, head_id: trained.head.id }, metric: strip(before), trained: strip(after), calibration: { ...cal, held_out: { passed: heldPass, searches: held.length, ci95: clopperPearson(heldPass, held.length) } } }, null, 2)}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  },
);
