import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { LocalCluster } from '@yoco/devkit';
import { Rng } from '@yoco/common';
import { clopperPearson } from '@yoco/eval';
import { headToOnnx, metricHead } from '@yoco/head';
import { afterAll, describe, expect, it } from 'vitest';
import { identify, startCluster, unitVector, writeGallery } from '../support/cluster.js';
import { connect, flushPrefix, testPrefix } from '../support/redis.js';
import { rawUnary } from '../support/raw-unary.js';
import { unary } from '@yoco/rpc';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const YOCO = join(ROOT, 'packages/cli/bin/yoco.js');
const dir = mkdtempSync(join(tmpdir(), 'yoco-error-rates-'));

async function yoco(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [YOCO, ...args], { cwd: dir, maxBuffer: 64 * 1024 * 1024, timeout: 300_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function jsonl(file: string, samples: { subject: string; vector: ArrayLike<number> }[]): string {
  writeFileSync(file, samples.map((s) => JSON.stringify({ subject_id: s.subject, vector: Array.from(s.vector) })).join('\n') + '\n');
  return file;
}

/**
 * D=4 through the exact-L1 metric head (hidden = 2D): 40 enrolled subjects 10 apart on axis 0.
 * Each has 3 probes within L1 0.3 of its template and one 5 away (still nearest its own).
 * 400 people never enrolled: 396 at L1 >= 4 from every template, 4 at 0.5 from one.
 */
function knownSet() {
  const head = join(dir, 'l1.onnx');
  writeFileSync(head, headToOnnx(metricHead(KNOWN_HEAD)));
  const at = (x: number, y = 0, z = 0, w = 0) => [x, y, z, w];
  const gallery = Array.from({ length: 40 }, (_, s) => ({ subject: `in-${s}`, vector: at(10 * s) }));
  const probes: { subject: string; vector: number[] }[] = [];
  for (let s = 0; s < 40; s++) probes.push({ subject: `in-${s}`, vector: at(10 * s, 0.1) }, { subject: `in-${s}`, vector: at(10 * s, 0, 0.2) }, { subject: `in-${s}`, vector: at(10 * s, 0, 0, 0.3) }, { subject: `in-${s}`, vector: at(10 * s, 5) });
  for (let t = 0; t < 400; t++) {
    const u = t % 40;
    const k = Math.floor(t / 40);
    probes.push({ subject: `out-${t}`, vector: t < 4 ? at(10 * t + 0.5) : at(10 * u + 4, 0, 0, 3 * k) });
  }
  return { head, gallery, probes };
}
const KNOWN_HEAD = { dim: 4, hidden: 8, tau: 1, alpha: 8 };

interface KnownReport {
  verification: { genuine_pairs: number; impostor_pairs: number; pair_accuracy: number; at_fmr: { falseNegative: { count: number; total: number }; falsePositive: { rate: number; count: number; total: number } }[] };
  identification: { gallery_size: number; rank1: { count: number; total: number }; at_fpir: { measurable: boolean; note?: string; falseNegative?: { count: number; total: number }; falsePositive?: { count: number; total: number } }[] };
}

/** What the known set's 1:N search must give, however it is scored. */
function expectKnownIdentification(rep: KnownReport): void {
  // Every mate is top-1 (rank-1 = 160/160), but at FPIR 1% (the 4 close strangers pass) the far probes fail: FNIR 40/160.
  expect(rep.identification.rank1).toMatchObject({ count: 160, total: 160 });
  expect(rep.identification.at_fpir[0]).toMatchObject({ measurable: true, falsePositive: { count: 4, total: 400 }, falseNegative: { count: 40, total: 160 } });
  expect(rep.identification.at_fpir[1]).toMatchObject({ measurable: false });
  expect(rep.identification.at_fpir[1].note).toContain('400 non-mated searches');
}

describe('yoco eval on a set built to known rates', () => {
  it('reproduces its FNMR at FMR, FNIR at FPIR and rank-1, and says what it cannot measure', async () => {
    const { head, gallery, probes } = knownSet();
    const out = join(dir, 'eval-known');
    const r = await yoco('eval', '--data', jsonl(join(dir, 'probes.jsonl'), probes), '--gallery', jsonl(join(dir, 'gallery.jsonl'), gallery), '--head', head, '--fmr', '0.001', '--fpir', '0.01,0.001', '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const [rep] = (JSON.parse(r.stdout) as { reports: KnownReport[] }).reports;
    // 1:1: 480 genuine pairs (12 per enrolled subject), half of them with the far probe: FNMR 0.5 once 1 in 1000 impostors may pass.
    expect(rep.verification.genuine_pairs).toBe(480);
    expect(rep.verification.impostor_pairs).toBe(560 * 559 - 480);
    expect(rep.verification.at_fmr[0].falseNegative).toMatchObject({ count: 240, total: 480 });
    expect(rep.verification.at_fmr[0].falsePositive.rate).toBeLessThanOrEqual(0.001);
    expectKnownIdentification(rep);
    for (const png of ['det.png', 'roc.png', 'histogram.png', 'report.json']) expect(existsSync(join(out, png)), png).toBe(true);
  });
});

/** A describe block's cluster under a prefix of its own: stopped and flushed after the block. */
function clusterFixture(name: string): { prefix: string; cluster?: LocalCluster } {
  const f: { prefix: string; cluster?: LocalCluster } = { prefix: testPrefix(name) };
  afterAll(async () => {
    await f.cluster?.stop();
    const r = connect();
    await flushPrefix(r, f.prefix);
    r.disconnect();
  });
  return f;
}

describe('yoco eval through a running cluster', () => {
  const f = clusterFixture('eval-cluster');

  it("gives the known set's 1:N rates from the cluster's own searches, and 1:1 rates from its Verify", async () => {
    const { gallery, probes } = knownSet();
    const cluster = (f.cluster = await startCluster(f.prefix, { shards: 2, env: { YOCO_DIM: '4', YOCO_HIDDEN: '8', YOCO_HEAD_TAU: String(KNOWN_HEAD.tau), YOCO_HEAD_ALPHA: String(KNOWN_HEAD.alpha) } }));
    const client = cluster.matcherClient();
    await Promise.all(gallery.map((g) => unary(client, 'Enrol', { subjectId: g.subject, probes: [{ vector: { values: g.vector } }], wait: true }, { deadline: Date.now() + 30_000 })));
    const out = join(dir, 'eval-cluster');
    const r = await yoco('eval', '--cluster', '--address', cluster.address, '--data', jsonl(join(dir, 'probes-cluster.jsonl'), probes), '--fmr', '0.01', '--fpir', '0.01,0.001', '--impostor-pairs', '2', '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const [rep] = (JSON.parse(r.stdout) as { reports: KnownReport[] }).reports;
    // Exactly the in-process figures: the shards' head is the same L1 head.
    expectKnownIdentification(rep);
    expect(rep.identification.gallery_size).toBe(40);
    // 1:1 through Verify: each of the 160 mated probes against its subject, each of the 560 against 2 others.
    expect(rep.verification.genuine_pairs).toBe(160);
    expect(rep.verification.impostor_pairs).toBe(560 * 2);
    // At the head's own line (0.5, L1 = tau): the 40 far probes fail, no impostor pair passes but a close
    // stranger drawn against its neighbour (4 such strangers, 1120 pairs): accuracy 1 - (40/160 + <= 4/1120) / 2.
    expect(rep.verification.pair_accuracy).toBeLessThanOrEqual(0.875);
    expect(rep.verification.pair_accuracy).toBeGreaterThanOrEqual(1 - (0.25 + 4 / 1120) / 2);
    expect(rep.verification.at_fmr[0].falseNegative!.total).toBe(160);
    expect(rep.verification.at_fmr[0].falsePositive.rate).toBeLessThanOrEqual(0.01);
    for (const png of ['det.png', 'roc.png', 'histogram.png', 'report.json']) expect(existsSync(join(out, png)), png).toBe(true);
    // Misused: a head of its own, or a set none of whose subjects the cluster holds.
    expect((await yoco('eval', '--cluster', '--address', cluster.address, '--data', join(dir, 'probes-cluster.jsonl'), '--head', 'metric')).stderr).toMatch(/--cluster evaluates the head the cluster runs/);
    const strangersOnly = jsonl(join(dir, 'strangers-only.jsonl'), probes.filter((p) => p.subject.startsWith('out-')).slice(0, 20));
    expect((await yoco('eval', '--cluster', '--address', cluster.address, '--data', strangersOnly)).stderr).toMatch(/none of the set's 20 subjects is enrolled in the cluster/);
  });
});

describe('yoco train', () => {
  it('trains a head that separates identities the metric head cannot (hard negatives closer than the within-class spread)', async () => {
    // 32 dimensions: 8 carry the identity (centres N(0,1), spread 0.1), 24 are noise with spread 3.
    // Euclidean distance is all noise: same-subject pairs are as far apart as different-subject ones.
    const rng = new Rng(7);
    const set = (from: number, subjects: number) =>
      Array.from({ length: subjects }, (_, s) => {
        const c = Array.from({ length: 8 }, () => rng.normal());
        return Array.from({ length: 6 }, () => ({ subject: `syn-${from + s}`, vector: Array.from({ length: 32 }, (_, d) => (d < 8 ? c[d] + 0.1 * rng.normal() : 3 * rng.normal())) }));
      }).flat();
    const train = jsonl(join(dir, 'syn-train.jsonl'), set(0, 240));
    const test = jsonl(join(dir, 'syn-test.jsonl'), set(1000, 60));
    const headFile = join(dir, 'syn-head.onnx');
    const t = await yoco('train', '--data', train, '--out', headFile, '--json');
    expect(t.code, t.stderr).toBe(0);
    const summary = JSON.parse(t.stdout) as { validation_start: { accuracy: number }; validation_best: { accuracy: number }; best_epoch: number };
    expect(summary.best_epoch).toBeGreaterThan(0);
    expect(t.stderr).toMatch(/epoch +\d+\/30 .*val loss/);
    const e = await yoco('eval', '--data', test, '--head', 'metric', '--head', headFile, '--json', '--out', join(dir, 'eval-syn'));
    expect(e.code, e.stderr).toBe(0);
    const [metric, trained] = (JSON.parse(e.stdout) as { reports: { verification: { pair_accuracy: number } }[] }).reports;
    // On subjects it never saw.
    expect(metric.verification.pair_accuracy).toBeLessThan(0.7);
    expect(trained.verification.pair_accuracy).toBeGreaterThan(0.95);
  });
});

describe('yoco calibrate against a running cluster', () => {
  const f = clusterFixture('calibrate');

  it('picks the threshold from impostor searches; the coordinator applies it and shows where it came from; held-out impostors pass at the promised FPIR', async () => {
    const gallery = await writeGallery(f.prefix, 300, 3);
    const thresholdFile = join(dir, 'threshold.json');
    const cluster = (f.cluster = await startCluster(f.prefix, { shards: 1, coordinatorEnv: { THRESHOLD_FILE: thresholdFile } }));
    const client = cluster.matcherClient();
    const status = async () => rawUnary<{ defaultThreshold: number; thresholdSource: { source: string; fpir: number; gallerySize: number; searches: number; threshold: number; extrapolated: boolean } }>(client, 'ClusterStatus', {});
    expect((await status()).thresholdSource.source).toBe('DEFAULT_THRESHOLD');
    const templates = [...gallery.subjects.values()].reduce((n, v) => n + v.length, 0);
    const rng = new Rng(99);
    const strangers = (n: number, from: number) => Array.from({ length: n }, (_, i) => ({ subject: `stranger-${from + i}`, vector: unitVector(rng) }));
    const c = await yoco('calibrate', '--fpir', '0.01', '--impostors', jsonl(join(dir, 'strangers.jsonl'), strangers(1500, 0)), '--out', thresholdFile, '--address', cluster.address, '--json');
    expect(c.code, c.stderr).toBe(0);
    const cal = JSON.parse(c.stdout) as { threshold: number; searches: number; gallery_size: number; measured: { count: number } };
    expect(cal).toMatchObject({ searches: 1500, gallery_size: templates });
    expect(cal.measured.count).toBeLessThanOrEqual(15);
    // Picked up within a second or two (the file is polled), with its provenance.
    for (let i = 0; (await status()).thresholdSource.source !== thresholdFile; i++) {
      if (i > 50) throw new Error('the coordinator did not read the threshold file');
      await new Promise((r) => setTimeout(r, 100));
    }
    const s = await status();
    expect(s.defaultThreshold).toBeCloseTo(cal.threshold, 6);
    expect(s.thresholdSource).toMatchObject({ fpir: 0.01, gallerySize: templates, searches: 1500, extrapolated: false });
    // 2000 others never seen by the calibration, at the default threshold: the share accepted as someone.
    const heldOut = strangers(2000, 5000);
    let accepted = 0;
    for (let i = 0; i < heldOut.length; i += 50) {
      const replies = await Promise.all(heldOut.slice(i, i + 50).map((h) => identify(client, h.vector, { topK: 1 })));
      accepted += replies.filter((r) => r.matches[0]?.accepted).length;
    }
    const [lo, hi] = clopperPearson(accepted, heldOut.length);
    expect(lo).toBeLessThan(0.01);
    expect(hi).toBeGreaterThan(0.01);
    // A broken rewrite of the file keeps the last good threshold.
    writeFileSync(thresholdFile, '{"threshold": "high"');
    await new Promise((r) => setTimeout(r, 2500));
    expect((await status()).defaultThreshold).toBeCloseTo(cal.threshold, 6);
    // Calibrating with people who are enrolled is refused.
    const enrolled = [...gallery.subjects.entries()].slice(0, 5).map(([subject, v]) => ({ subject, vector: v[0] }));
    const bad = await yoco('calibrate', '--fpir', '0.01', '--impostors', jsonl(join(dir, 'enrolled.jsonl'), enrolled), '--out', join(dir, 'x.json'), '--address', cluster.address);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: 5 impostor subject\(s\) are enrolled/m);
  });
});
