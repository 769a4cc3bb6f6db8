import type { v1 } from '@yoco/rpc';

/** One shard's candidate: its subject's best template (what a shard sends). */
export type ShardMatch = Pick<v1.ShardMatch__Output, 'subjectId' | 'templateId' | 'score' | 'logit'>;
/** One line of the Matcher's answer. */
export type MergedMatch = Required<v1.Match>;

/**
 * The shards' candidates merged into the answer: best logit first (logits
 * rank exactly where probabilities saturate), ties by subject id, each
 * subject once (its best template), at most topK, each marked accepted
 * against the threshold. A pure function: what the shards said decides.
 */
export function mergeMatches(matches: readonly ShardMatch[], topK: number, threshold: number): MergedMatch[] {
  const sorted = [...matches].sort((a, b) => b.logit - a.logit || (a.subjectId < b.subjectId ? -1 : a.subjectId > b.subjectId ? 1 : 0));
  const seen = new Set<string>();
  const top: MergedMatch[] = [];
  for (const m of sorted) {
    if (top.length === topK) break;
    if (seen.has(m.subjectId)) continue;
    seen.add(m.subjectId);
    top.push({ subjectId: m.subjectId, score: m.score, templateId: m.templateId, accepted: m.score >= threshold });
  }
  return top;
}
