import { Rng } from '@yoco/common';
import { createScorer, metricHead } from '@yoco/head';
import { GallerySlice } from '@yoco/gallery';
import { unitRows } from '../packages/head/test/helpers.js';
const N = Number(process.argv[2] ?? 50000), D = 3840;
const head = metricHead({ dim: D, hidden: 512 });
const rng = new Rng(3);
const rows = unitRows(N, D, rng);
const queries = Array.from({ length: 32 }, (_, i) => { const j = rng.int(N); const q = rows.slice(j * D, (j + 1) * D); for (let k = 0; k < D; k++) q[k] += 0.01 * rng.normal(); return q; });
const med = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
for (const engine of ['factorized', 'int8'] as const) {
  const scorer = await createScorer(head, { engine });
  const slice = new GallerySlice(scorer);
  slice.add(Array.from({ length: N }, (_, i) => ({ subjectId: `s${i}`, templateId: `t${i}`, vector: rows.subarray(i * D, (i + 1) * D) })));
  await scorer.flush();
  for (let w = 0; w < 3; w++) await slice.search(queries[w], 10);
  const t1: number[] = [], ts: number[] = [];
  for (let i = 0; i < 16; i++) { let t = performance.now(); await scorer.scan(queries[i]); ts.push(performance.now() - t); t = performance.now(); await slice.search(queries[i], 10); t1.push(performance.now() - t); }
  const tb: number[] = [];
  for (let r = 0; r < 5; r++) { const t = performance.now(); await slice.searchMany(queries.slice(0, 16), 10); tb.push((performance.now() - t) / 16); }
  console.log(engine, 'scan', med(ts).toFixed(2), 'search', med(t1).toFixed(2), 'batch16/query', med(tb).toFixed(2), 'x', (med(t1) / med(tb)).toFixed(2));
  await scorer.close();
}
