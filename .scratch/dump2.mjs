const { Int8Kernel } = await import('../packages/head/dist/kernel/int8-kernel.js');
const N = 50000, H = 512;
const k = new Int8Kernel(H, 1);
k.setWeights(new Int16Array(H).fill(3));
k.append(new Int8Array(N * H).fill(5), N);
const out = new Int32Array(N), r = new Int16Array(H).fill(-3);
for (let i = 0; i < 40; i++) { const t = performance.now(); k.run(r, out); if (i % 5 == 0) console.error('run', i, (performance.now() - t).toFixed(2)); }
