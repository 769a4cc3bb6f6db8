import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluate, type OperatingPoint } from '@yoco/eval';
import { metricHead } from '@yoco/head';
import { MODELS_DIR, PROFILES } from '@yoco/models';
import { HeadTrainer } from './head-trainer.js';
import { buildPhotoSet } from './photo-set.js';

/** Bumped when the recipe below changes, so a cached head is not taken for a new one. */
const RECIPE_VERSION = 1;

/**
 * The recipe: the photo benchmark's quick set (OpenCV's and the npm
 * packages' sample photos, 3 views each, at most 200 identities, split
 * 60/20/20 by identity) and 6 epochs from the metric head; all seeded.
 */
const RECIPE = { views: 3, maxIdentities: 200, sources: ['opencv-doc', 'npm-samples'] as const, epochs: 6, patience: 2, seed: 1 };

export const DEFAULT_HEAD_FILES = { head: 'resnet50-ms3840.trained-head.onnx', report: 'resnet50-ms3840.trained-head.json' } as const;

export interface DefaultHeadReport {
  /** The photo set's key and the recipe: the same inputs give the same head. */
  key: string;
  /** Whether npm start uses it: only when it measured better than the metric head on the held-out identities. */
  adopted: boolean;
  reason: string;
  /** The head file, in the models folder (when adopted). */
  head?: string;
  headId?: string;
  testIdentities: number;
  /** FNMR at FMR 1e-2 on the test split, with its 95% interval, for both heads. */
  metric?: { fnmr: number; ci95: [number, number] };
  trained?: { fnmr: number; ci95: [number, number] };
  bestEpoch?: number;
  trainMs?: number;
  photoSetMs: number;
  builtAt: string;
}

function point(p: OperatingPoint | undefined): { fnmr: number; ci95: [number, number] } | undefined {
  return p?.measurable && p.falseNegative ? { fnmr: p.falseNegative.rate, ci95: p.falseNegative.ci95 } : undefined;
}

/**
 * npm start's head for the default profile (resnet50-ms3840), built once into
 * the models folder and cached there: trained on the photo benchmark's quick
 * set, adopted only when it beats the metric head on identities neither saw
 * (their FNMR intervals at FMR 1e-2 apart). Without the photos (opencv-doc
 * not installed) it reports why and npm start keeps the metric head.
 */
export async function buildDefaultHead(dir = MODELS_DIR, log: (m: string) => void = () => {}): Promise<DefaultHeadReport> {
  const started = performance.now();
  const profile = PROFILES['resnet50-ms3840'];
  const reportFile = join(dir, DEFAULT_HEAD_FILES.report);
  const set = await buildPhotoSet({ dir: join(dir, 'trained-head-photos'), views: RECIPE.views, maxIdentities: RECIPE.maxIdentities, sources: RECIPE.sources, seed: RECIPE.seed, log });
  const key = `${set.manifest.key}:r${RECIPE_VERSION}:e${RECIPE.epochs}p${RECIPE.patience}s${RECIPE.seed}`;
  if (existsSync(reportFile)) {
    const cached = JSON.parse(readFileSync(reportFile, 'utf8')) as DefaultHeadReport;
    if (cached.key === key && (!cached.adopted || existsSync(join(dir, DEFAULT_HEAD_FILES.head)))) return cached;
  }
  const photoSetMs = Math.round(performance.now() - started);
  const metric = metricHead({ dim: profile.dim, hidden: 512, tau: profile.headTau, alpha: profile.headAlpha });
  const trainStarted = performance.now();
  log(`training the default head on ${set.manifest.split.train} identities (${RECIPE.epochs} epochs at most)`);
  const trained = await new HeadTrainer({ epochs: RECIPE.epochs, patience: RECIPE.patience, seed: RECIPE.seed }).train(metric, set.train, set.validation);
  const trainMs = Math.round(performance.now() - trainStarted);
  const before = point((await evaluate(set.test, metric)).report.verification.at_fmr[0]);
  const after = point((await evaluate(set.test, trained.head)).report.verification.at_fmr[0]);
  const better = !!before && !!after && after.ci95[1] < before.ci95[0];
  const report: DefaultHeadReport = {
    key,
    adopted: better,
    reason: better
      ? `FNMR at FMR 1e-2 on ${set.manifest.split.test} held-out identities: ${after!.fnmr.toFixed(3)} against the metric head's ${before!.fnmr.toFixed(3)}, intervals apart`
      : `not better than the metric head on the held-out identities (FNMR at FMR 1e-2: trained ${after?.fnmr.toFixed(3) ?? 'not measurable'}, metric ${before?.fnmr.toFixed(3) ?? 'not measurable'})`,
    head: better ? DEFAULT_HEAD_FILES.head : undefined,
    headId: better ? trained.head.id : undefined,
    testIdentities: set.manifest.split.test,
    metric: before,
    trained: after,
    bestEpoch: trained.bestEpoch,
    trainMs,
    photoSetMs,
    builtAt: new Date().toISOString(),
  };
  if (better) {
    writeFileSync(join(dir, `${DEFAULT_HEAD_FILES.head}.tmp`), trained.head.bytes);
    renameSync(join(dir, `${DEFAULT_HEAD_FILES.head}.tmp`), join(dir, DEFAULT_HEAD_FILES.head));
  }
  writeFileSync(`${reportFile}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
  renameSync(`${reportFile}.tmp`, reportFile);
  return report;
}

// `npm run models` builds it with the models: node packages/train/dist/default-head.js
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  buildDefaultHead(MODELS_DIR, console.log).then(
    (r) => console.log(`trained head: ${r.adopted ? `${r.head} (${r.headId}), used by npm start` : 'not used'}: ${r.reason}`),
    (err: Error) => {
      console.error(`trained head: not built (${err.message}); npm start keeps the metric head`);
      process.exit(0);
    },
  );
}
