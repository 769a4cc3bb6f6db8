import { setFlagsFromString } from 'node:v8';
setFlagsFromString('--experimental-wasm-relaxed-simd');
const { relaxedModule } = await import('../packages/head/dist/kernel/relaxed-module.js');
const m = relaxedModule(32);
const mem = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
const i = new WebAssembly.Instance(m, { env: { memory: mem } });
i.exports.score7(1024, 0, 512, 256, 4, 32);
