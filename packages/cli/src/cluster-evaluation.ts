import { forEachConcurrently, Rng } from '@yoco/common';
import type { Matcher } from '@yoco/client';
import { mateRank, OpenSet, reportOf, Verification, type EvaluationReport, type SearchOutcome } from '@yoco/eval';
import { isServiceError, Status } from '@yoco/rpc';
import type { ImpostorProbe } from './commands/calibrate.js';

export interface ClusterEvaluationOptions {
  fmr?: number[];
  fpir?: number[];
  /** Impostor Verify pairs per probe, against other enrolled subjects chosen at random (seeded). */
  impostorPairs?: number;
  concurrency?: number;
  seed?: number;
}

/** Candidates asked per search: rank-5 needs 5, and a mate at the top still leaves the best non-mate. */
const TOP_K = 6;

/**
 * `yoco eval --cluster`: the labelled set's samples searched through the
 * running cluster, as a gate would search: images go to its embedder, every
 * score comes from its shards' head. The set's subjects that the cluster
 * holds (GetSubject) are the enrolled ones: their samples are mated
 * searches, the others' non-mated. 1:N from Identify (top 6, any score);
 * 1:1 from Verify: each mated sample against its own subject (genuine) and
 * every sample against `impostorPairs` other enrolled subjects (impostor).
 * Search with other samples than the ones enrolled, or the mates score as
 * their own copies.
 */
export async function evaluateThroughCluster(client: Matcher, probes: ImpostorProbe[], o: ClusterEvaluationOptions = {}): Promise<EvaluationReport> {
  const concurrency = o.concurrency ?? 8;
  const status = await client.call('ClusterStatus', {}, { timeoutMs: 10_000 });
  const subjects = [...new Set(probes.map((p) => p.subject))].sort();
  const enrolled = new Set<string>();
  await forEachConcurrently(subjects, concurrency, async (subjectId) => {
    try {
      await client.call('GetSubject', { subjectId }, { timeoutMs: 30_000 });
      enrolled.add(subjectId);
    } catch (err) {
      if (!(isServiceError(err) && err.code === Status.NOT_FOUND)) throw err;
    }
  });
  if (enrolled.size === 0) throw new Error(`none of the set's ${subjects.length} subjects is enrolled in the cluster: enrol some of them (yoco enrol --bulk) with other samples than the set's, then evaluate`);
  const enrolledList = [...enrolled].sort();
  const outcomes: SearchOutcome[] = new Array(probes.length);
  const ranks: (number | undefined)[] = new Array(probes.length);
  let gallerySize = 0;
  await forEachConcurrently(probes, concurrency, async (p, i) => {
    const res = await client.call('Identify', { probe: p.probe, topK: TOP_K, threshold: 0 }, { timeoutMs: 60_000 });
    gallerySize = Math.max(gallerySize, Number(res.gallerySize));
    const mated = enrolled.has(p.subject);
    const mate = res.matches.find((m) => m.subjectId === p.subject);
    const others = res.matches.filter((m) => m.subjectId !== p.subject).map((m) => m.score);
    // A mate beyond the top 6 scores below all six: a miss at any threshold, and past rank 5.
    const outcome = { mated, mateScore: mated ? (mate?.score ?? -1) : NaN, nonMateScore: others.length ? Math.max(...others) : -Infinity };
    outcomes[i] = outcome;
    if (mated) ranks[i] = mate ? mateRank(outcome, others) : TOP_K + 1;
  });
  const rng = new Rng(o.seed ?? 1);
  const pairs: { probe: ImpostorProbe['probe']; subjectId: string; genuine: boolean }[] = [];
  for (const p of probes) {
    if (enrolled.has(p.subject)) pairs.push({ probe: p.probe, subjectId: p.subject, genuine: true });
    const others = enrolledList.filter((s) => s !== p.subject);
    rng.shuffle(others);
    for (const s of others.slice(0, o.impostorPairs ?? 10)) pairs.push({ probe: p.probe, subjectId: s, genuine: false });
  }
  const scores = new Float32Array(pairs.length);
  await forEachConcurrently(pairs, concurrency, async (pair, i) => {
    scores[i] = (await client.call('Verify', { subjectId: pair.subjectId, probe: pair.probe, threshold: 0 }, { timeoutMs: 60_000 })).score;
  });
  const verification = new Verification(
    scores.filter((_, i) => pairs[i].genuine),
    scores.filter((_, i) => !pairs[i].genuine),
  );
  // The gallery is the cluster's (templates searched), not just the set's enrolled subjects: FPIR grows with it.
  const openSet = new OpenSet(outcomes, ranks.filter((r): r is number => r !== undefined), gallerySize);
  return reportOf(status.headId ?? '', { samples: probes.length, subjects: subjects.length }, verification, openSet, o);
}
