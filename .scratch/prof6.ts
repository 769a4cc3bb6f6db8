import { Rng } from '@yoco/common';
import { createScorer, metricHead } from '@yoco/head';
import { unitRows } from '../packages/head/test/helpers.js';
const N = 20000, D = 3840;
const head = metricHead({ dim: D, hidden: 512 });
const w = head.w2; let mn = Infinity, mx = -Infinity; for (const x of w) { mn = Math.min(mn, x); mx = Math.max(mx, x); }
console.log('w2 range', mn, mx);
const rng = new Rng(3);
const rows = unitRows(N, D, rng);
const q = rows.slice(0, D);
for (const simd of ['simd128', 'relaxed'] as const) {
  const s: any = await createScorer(head, { engine: 'int8', int8: { simd } });
  s.add(rows); await s.flush();
  const r = await s.scan(q);
  const l = Array.from(r.logits as Float64Array).sort((a, b) => b - a);
  const rs = r.bounds.rowSlack as Float32Array; let mean = 0; for (let i = 0; i < N; i++) mean += rs[i]; mean /= N;
  console.log(simd, { slack: r.bounds.slack, maxRowSlack: r.bounds.maxRowSlack, meanRowSlack: mean, top: l.slice(0, 3), l10: l[9], l40: l[39], l200: l[199], l1000: l[999] });
  await s.close();
}
