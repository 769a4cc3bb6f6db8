import { Int8Kernel } from '../packages/head/src/kernel/int8-kernel.js';
const N = 50000, H = 512;
const med = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
for (const threads of [1, 2]) {
  const k = new Int8Kernel(H, threads);
  k.setWeights(Int16Array.from({ length: H }, (_, j) => (j * 37) % 2000 - 1000));
  const rows = Int8Array.from({ length: N * H }, (_, i) => ((i * 2654435761) >>> 24) - 128);
  k.append(rows, N);
  const out = new Int32Array(N);
  const r = Int16Array.from({ length: H }, (_, j) => (j % 50) - 25);
  const t1: number[] = [];
  for (let i = 0; i < 30; i++) { const t = performance.now(); k.run(r, out); t1.push(performance.now() - t); }
  const small: number[] = [];
  for (let i = 0; i < 200; i++) { const t = performance.now(); k.run(r, out, 2000); small.push(performance.now() - t); }
  const res: Record<string, number> = { threads, run: med(t1), l2resident2000rows_per50k: med(small) * 25 };
  for (const nq of [4, 16, 32]) {
    const rs = Array.from({ length: nq }, () => r), outs = rs.map(() => new Int32Array(N));
    const tb: number[] = [];
    for (let i = 0; i < 8; i++) { const t = performance.now(); k.runMany(rs, outs); tb.push((performance.now() - t) / nq); }
    res[`many${nq}_perq`] = med(tb);
  }
  console.log(res);
  await k.close();
}
