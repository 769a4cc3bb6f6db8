import { setFlagsFromString } from 'node:v8';
setFlagsFromString('--experimental-wasm-relaxed-simd');
import { Rng } from '@yoco/common';
import { Int8Mirror } from '../packages/head/src/int8-mirror.js';
const H = 32, N = 2000;
const rng = new Rng(1);
const w = Float32Array.from({ length: H }, () => -8);
const P = Float32Array.from({ length: N * H }, () => rng.normal() * 0.5);
for (const relaxed of [false, true]) {
  const m = new Int8Mirror(H, w, 1e-4, 1, relaxed);
  m.fit((i) => P.subarray(i * H, (i + 1) * H), N);
  const u = Float32Array.from({ length: H }, () => rng.normal() * 0.5);
  const got = m.scan(u, N, 0, new Float64Array(N))!;
  let maxErr = 0;
  for (let i = 0; i < 5; i++) { let e = 0; for (let j = 0; j < H; j++) e += w[j] * Math.max(0, P[i * H + j] + u[j]); console.log(relaxed, i, e.toFixed(3), got.logits[i].toFixed(3)); }
  console.log((m as any).scale.slice(0, 3), (m as any).offset.slice(0, 3), (m as any).v.slice(0, 3), (m as any).t);
}
{
  const m: any = new Int8Mirror(H, w, 1e-4, 1, true);
  m.fit((i: number) => P.subarray(i * H, (i + 1) * H), N);
  const u = Float32Array.from({ length: H }, () => rng.normal() * 0.5);
  const prep = m.prepare(u);
  const k = m.kernel;
  const out = new Int32Array(N);
  k.run(prep.r, out);
  const mem = new Int8Array(k.memory.buffer);
  const rowsOff = k.rowsOffset;
  for (let i = 0; i < 3; i++) {
    let want = 0;
    for (let j = 0; j < H; j++) want += m.v[j] * Math.max(0, mem[rowsOff + i * k.width + j] + prep.r[j]);
    console.log('kernel', out[i], 'want', want, 'constant', prep.constant, JSON.stringify([...prep.r]), JSON.stringify([...mem.slice(rowsOff + i * k.width, rowsOff + i * k.width + 32)]), JSON.stringify([...new Int8Array(k.memory.buffer, k.vOffset, 32)]));
  }
}
