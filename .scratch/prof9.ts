import { setFlagsFromString } from 'node:v8';
setFlagsFromString('--experimental-wasm-relaxed-simd');
import { Int8Kernel } from '../packages/head/src/kernel/int8-kernel.js';
const H = 32;
for (const [qv, rv, vv] of [[1, 0, 1], [1, 0, -1], [0, 1, 1], [2, 0, 3], [-1, 0, 1], [1, 1, 1]]) {
  const k = new Int8Kernel(H, 1, true);
  k.setWeights(new Int16Array(H).fill(vv));
  k.append(new Int8Array(H).fill(qv), 1);
  const out = new Int32Array(1);
  k.run(new Int16Array(H).fill(rv), out);
  console.log({ qv, rv, vv, got: out[0], want: H * vv * Math.max(0, qv + rv) });
}
