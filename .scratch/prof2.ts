import { Rng } from '@yoco/common';
import { createScorer, metricHead } from '@yoco/head';
import { unitRows } from '../packages/head/test/helpers.js';
const N = 50000, D = 3840;
const head = metricHead({ dim: D, hidden: 512 });
const rng = new Rng(3);
const rows = unitRows(N, D, rng);
const med = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
const scorer: any = await createScorer(head, { engine: 'int8' });
scorer.add(rows); await scorer.flush();
const q = rows.slice(0, D);
await scorer.scan(q);
const sess = scorer.projections.sessions.query;
const { Tensor } = await import('onnxruntime-node');
const tp: number[] = [];
let u: Float32Array = new Float32Array();
for (let i = 0; i < 20; i++) { const t = performance.now(); u = (await sess.run({ x: new Tensor('float32', q, [1, D]) })).y.data; tp.push(performance.now() - t); }
const k = scorer.mirror.kernel; const out = new Int32Array(N); const r = new Int16Array(512).fill(-100);
const tk: number[] = [], tk1: number[] = [];
for (let i = 0; i < 20; i++) { let t = performance.now(); k.run(r, out, N); tk.push(performance.now() - t); }
const into = new Float64Array(N);
const tm: number[] = [];
for (let i = 0; i < 20; i++) { const t = performance.now(); scorer.mirror.scan(u, N, 0, into); tm.push(performance.now() - t); }
const rs = Array.from({ length: 16 }, () => r), outs = Array.from({ length: 16 }, () => new Int32Array(N));
const tb: number[] = [];
for (let i = 0; i < 5; i++) { const t = performance.now(); k.runMany(rs, outs, N); tb.push((performance.now() - t) / 16); }
// the float32 kernel
const f: any = scorer.kernel; const fo = new Float32Array(N);
const tf: number[] = [];
for (let i = 0; i < 20; i++) { const t = performance.now(); f.run(u, fo, N); tf.push(performance.now() - t); }
console.log({ project: med(tp), int8kernel: med(tk), mirrorScan: med(tm), runManyPerQuery1thread: med(tb), f32kernel: med(tf), threads: k.threads });
await scorer.close();
