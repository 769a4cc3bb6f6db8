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
 *
 * `-- --profile face-resnet128` runs the face profile's smoke test instead:
 * no identity-labelled face set can be had offline, so its identities are
 * SYNTHETIC 128-wide descriptors (face-api's scale: different people ~1.0
 * apart, the same ~0.45) with 8 shared nuisance directions (lighting, pose)
 * that move every descriptor by ~1.0, which the metric head cannot tell from
 * identity. Writes test/bench/results/train-face-synthetic.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng } from '@yoco/common';
import { calibrateThreshold, clopperPearson, detSvg, evaluate, histogramSvg, LabelledSet, svgToPng, type EvaluationReport, type OperatingPoint } from '@yoco/eval';
import { metricHead } from '@yoco/head';
import { PROFILES } from '@yoco/models';
import { buildPhotoSet, HeadTrainer } from '@yoco/train';
import { machineInfo, printTable } from './bench-util.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({ options: { dir: { type: 'string', default: join(ROOT, '.yoco/bench/photo-set') }, epochs: { type: 'string', default: '30' }, profile: { type: 'string', default: 'resnet50-ms3840' } } });
const log = (m: string) => process.stderr.write(`${m}\n`);

const rate = (r: { rate: number; ci95: [number, number]; count: number; total: number }) => `${(r.rate * 100).toFixed(2)}% [${(r.ci95[0] * 100).toFixed(1)}, ${(r.ci95[1] * 100).toFixed(1)}] (${r.count}/${r.total})`;
const op = (x: OperatingPoint) => (x.measurable ? rate(x.falseNegative!) : `not measurable (${x.note})`);
const row = (name: string, r: EvaluationReport) => [name, (r.verification.pair_accuracy * 100).toFixed(2) + '%', op(r.verification.at_fmr[0]), op(r.verification.at_fmr[1]), rate(r.identification.rank1), op(r.identification.at_fpir[0]), op(r.identification.at_fpir[1])];
const HEADER = ['head (test split)', 'pair acc', 'FNMR@FMR 1e-2', 'FNMR@FMR 1e-3', 'rank-1', 'FNIR@FPIR 1e-2', 'FNIR@FPIR 1e-3'];

/** Synthetic face-scale identities: see the file's comment. */
function syntheticFaces(rng: Rng, nuisance: Float32Array[], from: number, subjects: number, samples: number): LabelledSet {
  const dim = 128;
  const out: { subject: string; vector: Float32Array }[] = [];
  for (let s = 0; s < subjects; s++) {
    const centre = Float32Array.from({ length: dim }, () => 0.0625 * rng.normal());
    for (let k = 0; k < samples; k++) {
      const v = centre.map((c) => c + 0.028 * rng.normal());
      for (const dir of nuisance) {
        const a = 0.25 * rng.normal();
        for (let d = 0; d < dim; d++) v[d] += a * dir[d];
      }
      out.push({ subject: `syn-face-${from + s}`, vector: v });
    }
  }
  return LabelledSet.of(out);
}

async function faceSmoke(): Promise<void> {
  const p = PROFILES['face-resnet128'];
  const rng = new Rng(128);
  const nuisance = Array.from({ length: 8 }, () => {
    const d = Float32Array.from({ length: 128 }, () => rng.normal());
    const n = Math.hypot(...d);
    return d.map((x) => x / n);
  });
  // 600 test subjects never enrolled x 6 samples = 3600 non-mated searches: FPIR 1e-3 is measurable.
  const train = syntheticFaces(rng, nuisance, 0, 600, 6);
  const validation = syntheticFaces(rng, nuisance, 10_000, 150, 6);
  const test = syntheticFaces(rng, nuisance, 20_000, 1200, 6);
  const metric = metricHead({ dim: p.dim, hidden: p.headHidden!, tau: p.headTau, alpha: p.headAlpha });
  const before = (await evaluate(test, metric)).report;
  const trained = await new HeadTrainer({ epochs: Number(values.epochs) }).train(metric, train, validation);
  const after = (await evaluate(test, trained.head)).report;
  console.log('face-resnet128, SYNTHETIC identities (a smoke test of training at the face profile\'s width and scale, not a claim about faces):');
  printTable(HEADER, [row('metric', before), row('trained', after)]);
  console.log(`training: ${(trained.ms / 1000).toFixed(1)} s on ${trained.backend}, best epoch ${trained.bestEpoch} of ${trained.history.length - 1}`);
  const strip = ({ histogram: _h, verification: { curve: _c, ...v }, ...r }: EvaluationReport) => ({ ...r, verification: v });
  writeFileSync(
    join(ROOT, 'test/bench/results/train-face-synthetic.json'),
    `${JSON.stringify({ machine: machineInfo(), synthetic: { dim: 128, train: 600, validation: 150, test: 1200, samples: 6, centre_sd: 0.0625, within_sd: 0.028, nuisance_directions: 8, nuisance_sd: 0.25 }, training: { ms: Math.round(trained.ms), backend: trained.backend, best_epoch: trained.bestEpoch, epochs_run: trained.history.length - 1 }, metric: strip(before), trained: strip(after) }, null, 2)}\n`,
  );
}

async function main(): Promise<void> {
  if (values.profile === 'face-resnet128') return faceSmoke();
  if (values.profile !== 'resnet50-ms3840') throw new Error(`--profile ${values.profile}: resnet50-ms3840 or face-resnet128`);
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

  printTable(HEADER, [row('metric', before), row('trained', after)]);
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
