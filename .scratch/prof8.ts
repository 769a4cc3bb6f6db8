import { setFlagsFromString } from 'node:v8';
setFlagsFromString('--experimental-wasm-relaxed-simd');
import { Int8Kernel } from '../packages/head/src/kernel/int8-kernel.js';
for (const [H, vfn] of [[32, (j: number) => -110 + (j % 7)], [32, (j: number) => ((j * 37) % 255) - 127], [512, (j: number) => -110 + (j % 7)]] as const) {
  const k = new Int8Kernel(H, 1, true);
  const v = Int16Array.from({ length: H }, (_, j) => vfn(j));
  k.setWeights(v);
  const N = 10;
  const rows = Int8Array.from({ length: N * H }, (_, i) => ((i * 7919) % 128) - 64);
  k.append(rows, N);
  const r = Int16Array.from({ length: H }, (_, j) => (j % 129) - 64);
  const out = new Int32Array(N);
  k.run(r, out);
  let w = 0; for (let j = 0; j < H; j++) w += v[j] * Math.max(0, rows[j] + r[j]);
  console.log(H, out[0], w);
}
