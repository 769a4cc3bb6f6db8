import { renameSync, writeFileSync } from 'node:fs';
import { Rng } from '@yoco/common';
import type { LabelledSet } from '@yoco/eval';
import { loadHead, metricHead, type Head } from '@yoco/head';
import { PROFILES } from '@yoco/models';
import { HeadTrainer, type TrainProgress } from '@yoco/train';
import { readLabelled } from '../labelled-input.js';

export interface TrainCommandOptions {
  data: string;
  validation?: string;
  out: string;
  profile: keyof typeof PROFILES;
  init?: string;
  hidden?: number;
  epochs?: number;
  patience?: number;
  learningRate?: number;
  seed?: number;
  json: boolean;
}

/** The head a profile starts from when none is given: its metric head. */
export function profileMetricHead(profile: keyof typeof PROFILES, hidden?: number): Head {
  const p = PROFILES[profile];
  return metricHead({ dim: p.dim, hidden: hidden ?? p.headHidden ?? 512, tau: p.headTau ?? 1, alpha: p.headAlpha ?? 8 });
}

/**
 * The metric head for vectors of no profile (another width): its tau halfway
 * between the median genuine and median impostor distance of the data, and
 * steep enough to go from about 0.9 to 0.1 between them.
 */
export function fittedMetricHead(set: LabelledSet, hidden?: number): Head {
  const rng = new Rng(1);
  const genuine: number[] = [];
  const impostor: number[] = [];
  const dist = (a: number, b: number) => {
    const x = set.vector(a);
    const y = set.vector(b);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += (x[i] - y[i]) ** 2;
    return Math.sqrt(s);
  };
  for (let t = 0; t < 20_000 && (genuine.length < 500 || impostor.length < 500); t++) {
    const a = rng.int(set.count);
    const b = rng.int(set.count);
    if (a === b) continue;
    (set.subjects[a] === set.subjects[b] ? genuine : impostor).push(dist(a, b));
  }
  const median = (v: number[]) => v.sort((p, q) => p - q)[v.length >> 1] ?? 1;
  const g = median(genuine);
  const i = median(impostor);
  const tau = genuine.length ? (g + i) / 2 : i / 2;
  // Not steeper than 4 per quarter tau: where the two medians nearly meet, a steeper head only saturates.
  const alpha = 4 / Math.max(Math.abs(i - g), 0.25 * tau, 1e-9);
  const h = hidden ?? Math.min(512, 2 * set.dim);
  return metricHead({ dim: set.dim, hidden: h % 2 ? h + 1 : h, tau, alpha });
}

/** --init, else the profile's metric head when the data is the profile's width, else one fitted to the data. */
export async function startingHead(profile: keyof typeof PROFILES, data: LabelledSet, init?: string, hidden?: number): Promise<Head> {
  if (init && init !== 'metric') return loadHead(init);
  return data.dim === PROFILES[profile].dim ? profileMetricHead(profile, hidden) : fittedMetricHead(data, hidden);
}

function bar(p: TrainProgress): string {
  const done = (p.epoch - 1 + p.step / p.steps) / p.epochs;
  const v = p.validation ? `  val loss ${p.validation.loss.toFixed(4)} acc ${(p.validation.accuracy * 100).toFixed(2)}%` : '';
  return `epoch ${String(p.epoch).padStart(3)}/${p.epochs} [${'#'.repeat(Math.round(done * 30)).padEnd(30, '.')}] step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)}${v}`;
}

/** `yoco train`: a conv Siamese head trained on labelled vectors or image folders, written as ONNX. */
export async function train(o: TrainCommandOptions): Promise<void> {
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const data = await readLabelled(o.data, o.profile, log);
  const init = await startingHead(o.profile, data, o.init, o.hidden);
  if (data.dim !== init.dim) throw new Error(`${o.data} has vectors of ${data.dim}; the head takes ${init.dim} (--profile, --init)`);
  const [trainSet, validation] = o.validation ? [data, await readLabelled(o.validation, o.profile, log)] : data.splitBySubjects([0.8, 0.2], o.seed ?? 1);
  log(`training on ${trainSet.count} samples of ${trainSet.subjectIds().length} subjects, validating on ${validation.count} of ${validation.subjectIds().length} (split by subject); starting from ${o.init && o.init !== 'metric' ? o.init : data.dim === PROFILES[o.profile].dim ? `the ${o.profile} metric head` : `a metric head fitted to the data (tau ${init.b2 / -init.w2[0] > 0 ? (init.b2 / -init.w2[0]).toPrecision(3) : '?'})`} (D=${init.dim}, H=${init.hidden})`);
  const tty = process.stderr.isTTY;
  let last = 0;
  const trainer = new HeadTrainer({
    epochs: o.epochs,
    patience: o.patience,
    learningRate: o.learningRate,
    seed: o.seed,
    onProgress: (p) => {
      const now = Date.now();
      if (tty) process.stderr.write(`\r${bar(p)}`);
      else if (p.validation || now - last > 5000) {
        last = now;
        log(bar(p));
      }
      if (tty && p.validation) process.stderr.write('\n');
    },
  });
  const r = await trainer.train(init, trainSet, validation);
  writeFileSync(`${o.out}.tmp`, r.head.bytes);
  renameSync(`${o.out}.tmp`, o.out);
  const start = r.history[0].validation;
  const best = r.history.find((h) => h.epoch === r.bestEpoch)!.validation;
  const summary = {
    out: o.out,
    head_id: r.head.id,
    dim: r.head.dim,
    hidden: r.head.hidden,
    epochs_run: r.history.length - 1,
    best_epoch: r.bestEpoch,
    stopped_early: r.stoppedEarly,
    validation_start: start,
    validation_best: best,
    seconds: Number((r.ms / 1000).toFixed(1)),
    backend: r.backend,
    history: r.history,
  };
  if (o.json) console.log(JSON.stringify(summary, null, 2));
  else {
    console.log(`wrote ${o.out} (head ${r.head.id}, D=${r.head.dim}, H=${r.head.hidden}) in ${summary.seconds} s on ${r.backend}`);
    console.log(`validation pair accuracy ${(start.accuracy * 100).toFixed(2)}% -> ${(best.accuracy * 100).toFixed(2)}% (best epoch ${r.bestEpoch} of ${summary.epochs_run}${r.stoppedEarly ? ', stopped early' : ''}); loss ${start.loss.toFixed(4)} -> ${best.loss.toFixed(4)}`);
    if (r.bestEpoch === 0) console.log('  no epoch beat the starting head on the validation split: the file holds the starting head');
  }
}
