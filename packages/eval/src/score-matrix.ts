import { createScorer, sigmoid, type EngineName, type Head } from '@yoco/head';
import type { LabelledSet } from './labelled-set.js';

/**
 * Every probe against every gallery row through a real scorer (the
 * factorized engine by default, the one shards run): scores as float32,
 * probes x rows, row-major.
 */
export async function scoreMatrix(head: Head, gallery: LabelledSet, probes: LabelledSet, engine: EngineName = 'factorized'): Promise<Float32Array> {
  if (gallery.dim !== head.dim || probes.dim !== head.dim) throw new RangeError(`the head takes vectors of ${head.dim}; the set's are ${gallery.dim}`);
  const scorer = await createScorer(head, { engine });
  try {
    scorer.add(gallery.vectors);
    await scorer.flush();
    const out = new Float32Array(probes.count * gallery.count);
    for (let p = 0; p < probes.count; p++) {
      const logits = await scorer.logits(probes.vector(p));
      const row = p * gallery.count;
      for (let g = 0; g < gallery.count; g++) out[row + g] = sigmoid(logits[g]);
    }
    return out;
  } finally {
    await scorer.close();
  }
}
