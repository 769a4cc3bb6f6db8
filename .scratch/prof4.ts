import { setFlagsFromString } from 'node:v8';
setFlagsFromString('--experimental-wasm-relaxed-simd');
import { Int8Kernel } from '../packages/head/src/kernel/int8-kernel.js';
const N = 50000, H = 512;
const med = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
for (const relaxed of [false]) for (const threads of [1, 2]) {
  const k = new Int8Kernel(H, threads, relaxed);
  const v = Int16Array.from({ length: H }, (_, j) => ((j * 37) % 255) - 127);
  k.setWeights(v);
  const rows = Int8Array.from({ length: N * H }, (_, i) => (((i * 2654435761) >>> 25) - 64));
  k.append(rows, N);
  const out = new Int32Array(N);
  const r = Int16Array.from({ length: H }, (_, j) => (j % 129) - 64);
  const t1: number[] = [];
  for (let i = 0; i < 30; i++) { const t = performance.now(); k.run(r, out); t1.push(performance.now() - t); }
  let bad = 0;
  for (let i = 0; i < 2000; i++) { let w = 0; for (let j = 0; j < H; j++) w += v[j] * Math.max(0, rows[i * H + j] + r[j]); if (w !== out[i]) bad++; }
  const res: Record<string, number | boolean> = { relaxed, threads, run: med(t1), bad };
  for (const nq of [4, 16]) {
    const rs = Array.from({ length: nq }, () => r), outs = rs.map(() => new Int32Array(N));
    const tb: number[] = [];
    for (let i = 0; i < 8; i++) { const t = performance.now(); k.runMany(rs, outs); tb.push((performance.now() - t) / nq); }
    res[`many${nq}_perq`] = med(tb);
    res[`many${nq}_bad`] = outs.reduce((b, o) => b + o.reduce((c, x, i) => c + (x !== out[i] ? 1 : 0), 0), 0);
  }
  console.log(JSON.stringify(res));
  await k.close();
}
