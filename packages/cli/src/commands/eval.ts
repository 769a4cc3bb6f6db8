import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { detSvg, evaluate, histogramSvg, rocSvg, svgToPng, type EvaluationReport, type OperatingPoint, type Rate } from '@yoco/eval';
import type { Head } from '@yoco/head';
import type { PROFILES } from '@yoco/models';
import { readLabelled } from '../labelled-input.js';
import { evaluateThroughCluster } from '../cluster-evaluation.js';
import { matcherClient } from '../matcher-client.js';
import { labelledProbes } from './calibrate.js';
import { startingHead } from './train.js';

export interface EvalCommandOptions {
  data: string;
  /** Head files, or 'metric' for the profile's metric head; the first is the one the histogram shows. */
  heads: string[];
  profile: keyof typeof PROFILES;
  out: string;
  enrolFraction?: number;
  /** The enrolled templates (JSON Lines or image folders); without it, --enrol-fraction of --data's subjects. */
  gallery?: string;
  fmr?: number[];
  fpir?: number[];
  /** Through the running cluster instead of in this process. */
  cluster?: { address: string; impostorPairs: number; concurrency: number };
  json: boolean;
}

function pct(r: Rate): string {
  return `${(r.rate * 100).toFixed(2)}% [${(r.ci95[0] * 100).toFixed(2)}, ${(r.ci95[1] * 100).toFixed(2)}] (${r.count}/${r.total})`;
}

function point(rate: string, at: string, p: OperatingPoint): string {
  if (!p.measurable) return `  ${rate} at ${at} ${p.target}: not measurable (${p.note})`;
  return `  ${rate} at ${at} ${p.target}: ${pct(p.falseNegative!)}  threshold ${p.threshold!.toPrecision(6)} (${at} measured ${pct(p.falsePositive!)})`;
}

export function printReport(label: string, r: EvaluationReport): void {
  console.log(`${label} (head ${r.head}): ${r.samples} samples of ${r.subjects} subjects`);
  console.log(`  1:1  ${r.verification.genuine_pairs} genuine, ${r.verification.impostor_pairs} impostor pairs; pair accuracy at 0.5: ${(r.verification.pair_accuracy * 100).toFixed(2)}%`);
  for (const p of r.verification.at_fmr) console.log(point('FNMR', 'FMR', p));
  const id = r.identification;
  console.log(`  1:N  gallery ${id.gallery_size}, ${id.mated_searches} mated and ${id.non_mated_searches} non-mated searches; rank-1 ${pct(id.rank1)}, rank-5 ${pct(id.rank5)}`);
  for (const p of id.at_fpir) console.log(point('FNIR', 'FPIR', p));
}

async function writePng(file: string, svg: string): Promise<void> {
  writeFileSync(`${file}.tmp`, await svgToPng(svg));
  renameSync(`${file}.tmp`, file);
}

/** `yoco eval`: 1:1 and 1:N error rates with their counts and intervals, a JSON report and PNG plots. */
export async function evalCommand(o: EvalCommandOptions): Promise<EvaluationReport[]> {
  const log = (m: string) => process.stderr.write(`${m}\n`);
  if (o.cluster) return clusterEval(o, o.cluster);
  const data = await readLabelled(o.data, o.profile, log);
  const gallery = o.gallery ? await readLabelled(o.gallery, o.profile, log) : undefined;
  const heads: { name: string; head: Head }[] = [];
  for (const h of o.heads.length ? o.heads : ['metric']) heads.push({ name: h === 'metric' ? 'metric head' : basename(h), head: await startingHead(o.profile, data, h) });
  const reports: EvaluationReport[] = [];
  for (const { name, head } of heads) {
    if (head.dim !== data.dim) throw new Error(`${name} takes vectors of ${head.dim}; ${o.data} has ${data.dim}`);
    const { report } = await evaluate(data, head, { enrolFraction: o.enrolFraction, gallery, fmr: o.fmr, fpir: o.fpir });
    reports.push(report);
    if (!o.json) printReport(name, report);
  }
  await writeOutputs(o, heads.map((h) => h.name), reports);
  return reports;
}

/** The same protocol's rates, every score from the running cluster. */
async function clusterEval(o: EvalCommandOptions, c: NonNullable<EvalCommandOptions['cluster']>): Promise<EvaluationReport[]> {
  if (o.heads.length > 0) throw new Error('--cluster evaluates the head the cluster runs: drop --head');
  if (o.gallery) throw new Error("--cluster searches the cluster's gallery: drop --gallery");
  const client = matcherClient(c.address);
  try {
    const probes = await labelledProbes(o.data, o.profile);
    process.stderr.write(`searching ${probes.length} samples through the cluster at ${c.address}\n`);
    const report = await evaluateThroughCluster(client, probes, { fmr: o.fmr, fpir: o.fpir, impostorPairs: c.impostorPairs, concurrency: c.concurrency });
    const name = `cluster ${c.address}`;
    if (!o.json) printReport(name, report);
    await writeOutputs(o, [name], [report]);
    return [report];
  } finally {
    client.close();
  }
}

async function writeOutputs(o: EvalCommandOptions, names: string[], reports: EvaluationReport[]): Promise<void> {
  mkdirSync(o.out, { recursive: true });
  const series = reports.map((r, i) => ({ name: names[i], points: r.verification.curve }));
  await writePng(join(o.out, 'det.png'), detSvg(series));
  await writePng(join(o.out, 'roc.png'), rocSvg(series));
  await writePng(join(o.out, 'histogram.png'), histogramSvg(reports[0].histogram, `Scores, ${names[0]}: genuine vs impostor pairs`));
  const file = join(o.out, 'report.json');
  writeFileSync(`${file}.tmp`, `${JSON.stringify({ data: o.data, heads: names, reports }, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  if (o.json) console.log(JSON.stringify({ data: o.data, heads: names, reports: reports.map(({ verification: { curve: _c, ...v }, histogram: _h, ...r }) => ({ ...r, verification: v })) }, null, 2));
  else console.log(`report and plots in ${o.out}: report.json, det.png, roc.png, histogram.png`);
}
