import { Rng } from '@yoco/common';
import { describe, expect, it } from 'vitest';
import { ReluDotKernel } from '../src/kernel/relu-dot-kernel.js';

const H = 64;
const N = 20000;

describe('the scan pool woken ahead of a scan (warm)', () => {
  it('scans the same sums whether its helper is asleep, kept awake, or woken and left to sleep again; closes while awake', async () => {
    const rng = new Rng(3);
    const w = rng.normals(H, 1);
    const rows = rng.normals(N * H, 1);
    const alone = new ReluDotKernel(H, w, 1);
    const pooled = new ReluDotKernel(H, w, 2);
    alone.append(rows, N);
    pooled.append(rows, N);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const cases: [string, () => Promise<void>][] = [
      ['asleep', async () => {}],
      ['awake', async () => pooled.warm(200_000)],
      ['woken, asleep again', async () => {
        pooled.warm(100);
        await sleep(20);
      }],
      ['woken many times', async () => {
        for (let i = 0; i < 50; i++) pooled.warm(50_000);
      }],
      ['woken during the scan before', async () => {
        pooled.warm(1);
      }],
    ];
    for (const [, before] of cases) {
      for (let k = 0; k < 3; k++) {
        const u = rng.normals(H, 1);
        const want = new Float32Array(N);
        const got = new Float32Array(N);
        alone.run(u, want);
        await before();
        pooled.run(u, got);
        expect(got).toEqual(want);
      }
    }
    pooled.warm(10_000_000);
    await expect(pooled.close()).resolves.toBeUndefined();
    await alone.close();
  });
});
