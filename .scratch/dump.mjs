const { int8Module } = await import('../packages/head/dist/kernel/int8-module.js');
const m = int8Module(32);
const mem = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
const i = new WebAssembly.Instance(m, { env: { memory: mem } });
for (let k = 0; k < 3000; k++) i.exports.score8(1024, 0, 512, 256, 4, 32);
