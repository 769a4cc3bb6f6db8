import { mergeMatches, type ShardMatch } from '@yoco/coordinator';
import { describe, expect, it } from 'vitest';

const m = (subjectId: string, logit: number, templateId = `${subjectId}-t`): ShardMatch => ({ subjectId, templateId, logit, score: 1 / (1 + Math.exp(-logit)) });

describe('mergeMatches', () => {
  it('ranks by logit, where probabilities saturate too', () => {
    // Both score 1.0 in float32; the logits still order them.
    const merged = mergeMatches([m('a', 40), m('b', 45), m('c', -1)], 10, 0.5);
    expect(merged.map((x) => x.subjectId)).toEqual(['b', 'a', 'c']);
    expect(merged.map((x) => x.accepted)).toEqual([true, true, false]);
  });

  it('keeps a subject once, with its best template, across shards', () => {
    const merged = mergeMatches([m('a', 1, 'a-1'), m('b', 2), m('a', 3, 'a-2')], 10, 0.5);
    expect(merged).toEqual([
      { subjectId: 'a', templateId: 'a-2', score: m('a', 3).score, accepted: true },
      { subjectId: 'b', templateId: 'b-t', score: m('b', 2).score, accepted: true },
    ]);
  });

  it('stops at top_k, breaks ties by subject id, and leaves its input alone', () => {
    const input = [m('z', 1), m('y', 1), m('x', 1), m('w', 0)];
    const copy = [...input];
    expect(mergeMatches(input, 2, 0.9).map((x) => [x.subjectId, x.accepted])).toEqual([
      ['x', false],
      ['y', false],
    ]);
    expect(input).toEqual(copy);
    expect(mergeMatches([], 5, 0.5)).toEqual([]);
  });
});
