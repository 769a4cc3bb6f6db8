import { ReadFloor } from '@yoco/head';
const med = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
for (const [name, rb] of [['f32', 2048], ['int8', 512]] as const) for (const th of [1, 2]) {
  const f = new ReadFloor(50000, rb, th);
  const t: number[] = [];
  for (let i = 0; i < 30; i++) { const s = performance.now(); f.run(); t.push(performance.now() - s); }
  console.log(name, th, med(t).toFixed(2), 'ms', (50000 * rb / med(t) / 1e6).toFixed(1), 'GB/s');
  await f.close();
}
