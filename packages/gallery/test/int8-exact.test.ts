import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Rng } from '@yoco/common';
import { GallerySlice } from '@yoco/gallery';
import { createScorer, metricHead, parseHead, type Head, type Scorer } from '@yoco/head';
import { afterEach, describe, expect, it } from 'vitest';
import { randomHead, unitRows } from '../../head/test/helpers.js';

const open: Scorer[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});



const heads: [string, () => Head][] = [
  ['the metric head (D=64, H=128)', () => metricHead({ dim: 64, hidden: 128, tau: 0.5 })],
  ['a random conv head (D=48, H=512)', () => randomHead(48, 512, 7)],
  ['a torch-exported head (D=6, H=5)', () => parseHead(readFileSync(fileURLToPath(new URL('../../head/test/fixtures/torch-conv-opset17.onnx', import.meta.url))))],
];

describe('a slice on the int8 engine', () => {
  it.each(heads)('with %s: a slice answers 1000 queries with exactly the float32 top-10, templates and scores', async (_, make) => {
    const head = make();
    const rng = new Rng(3);
    const n = 4000;
    // Two templates for some subjects: the answer is per subject (its best template).
    const rows = unitRows(n, head.dim, rng);
    const templates = Array.from({ length: n }, (_, i) => ({ subjectId: `s${i % 3000}`, templateId: `t${i}`, vector: rows.subarray(i * head.dim, (i + 1) * head.dim) }));
    const slices = await Promise.all(
      (['factorized', 'int8'] as const).map(async (engine) => {
        const s = await createScorer(head, { engine, kernelThreads: 1, int8: engine === 'int8' ? { minRows: 1024 } : undefined });
        open.push(s);
        const slice = new GallerySlice(s);
        slice.add(templates);
        await s.flush();
        return slice;
      }),
    );
    let same = 0;
    const queries = 1000;
    for (let q = 0; q < queries; q++) {
      // Half the probes are near a gallery row (a genuine comparison), half random.
      const query = q % 2 === 0 ? unitRows(1, head.dim, rng) : Float32Array.from(rows.subarray((q % n) * head.dim, (q % n + 1) * head.dim), (x) => x + 0.01 * rng.normal());
      const [want, got] = await Promise.all(slices.map((s) => s.search(query, 10)));
      const key = (ms: { subjectId: string; templateId: string; logit: number; score: number }[]) => JSON.stringify(ms.map((m) => [m.subjectId, m.templateId, m.logit, m.score]));
      if (key(got) === key(want)) same++;
      else expect(got, `query ${q}`).toEqual(want);
    }
    expect(same).toBe(queries);
    // Batched, as the shard runs concurrent searches: each query of a batch gets its own answer, the float32 one.
    const batch = Array.from({ length: 8 }, () => unitRows(1, head.dim, rng));
    const [wantMany, gotMany] = await Promise.all(slices.map((s) => s.searchMany(batch, 10)));
    expect(gotMany).toEqual(wantMany);
    expect(new Set(gotMany.map((m) => m[0].subjectId)).size).toBeGreaterThan(1);
    const rescoredPerQuery = slices[1].rescored / queries;
    console.log(`int8 (${head.dim}x${head.hidden}): top-10 equal to float32 in ${same}/${queries} queries; subjects rescored from float32 per query: ${rescoredPerQuery.toFixed(1)} of 3000`);
    expect(rescoredPerQuery).toBeLessThan(3000);
  });

  it('past 20480 rows a slice reads only the blocks that can reach its floor: the float32 answer still, with two crowds of near-copies among the rows (a scale fitted to them leaves many other rows wide bounds)', async () => {
    const head = metricHead({ dim: 64, hidden: 128, tau: 0.5 });
    const rng = new Rng(9);
    const n = 24000;
    const rows = unitRows(n, head.dim, rng);
    // Two crowds of near-copies, each one subject in consecutive rows: rows 0-11999 (750 blocks) and
    // 12000-14999 (188 blocks). The rest are a subject each.
    const crowds = [[0, 12000], [12000, 15000]];
    for (const [from, to] of crowds) {
      const base = rows.slice(from * head.dim, (from + 1) * head.dim);
      for (let i = from; i < to; i++) rows.set(base.map((x) => x + 0.001 * rng.normal()), i * head.dim);
    }
    const subjectOf = (i: number) => (i < 12000 ? 'crowd0' : i < 15000 ? 'crowd1' : `s${i}`);
    const templates = Array.from({ length: n }, (_, i) => ({ subjectId: subjectOf(i), templateId: `t${i}`, vector: rows.subarray(i * head.dim, (i + 1) * head.dim) }));
    const slices = await Promise.all(
      (['factorized', 'int8'] as const).map(async (engine) => {
        const s = await createScorer(head, { engine, kernelThreads: 2 });
        open.push(s);
        const slice = new GallerySlice(s);
        slice.add(templates);
        await s.flush();
        return slice;
      }),
    );
    // A quarter of the queries near each crowd, a quarter near a single subject's row, a quarter random.
    for (let q = 0; q < 120; q++) {
      const near = [rng.int(12000), 12000 + rng.int(3000), 15000 + rng.int(n - 15000)][q % 4] ?? -1;
      const query = near < 0 ? unitRows(1, head.dim, rng) : Float32Array.from(rows.subarray(near * head.dim, (near + 1) * head.dim), (x) => x + 0.02 * rng.normal());
      const [want, got] = await Promise.all(slices.map((s) => s.search(query, 10)));
      expect(got, `query ${q}`).toEqual(want);
    }
    const { widened } = slices[1];
    console.log(`int8 slice over ${n} rows: candidates from blocks ${widened.blocks}, wider ${widened.wider}, every row ${widened.everyRow}`);
    expect(widened.blocks).toBeGreaterThan(0);
  });
});
