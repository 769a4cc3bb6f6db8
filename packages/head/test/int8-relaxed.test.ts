import { setFlagsFromString } from 'node:v8';
import { Rng } from '@yoco/common';
import { createScorer, metricHead } from '@yoco/head';
import { describe, expect, it } from 'vitest';
import { Int8Kernel } from '../src/kernel/int8-kernel.js';
import { unitRows } from './helpers.js';

// Its own file: the V8 flag it turns on stays on in this process.
describe('the relaxed-SIMD int8 kernel', () => {
  it('is used only where the runtime compiles it and its sums check out exact; forced, it is refused with the reason', async () => {
    const head = metricHead({ dim: 64, hidden: 128, tau: 0.5 });
    const rows = unitRows(3000, head.dim, new Rng(4));
    const withFlagOff = Int8Kernel.relaxedProblem(head.hidden);
    if (process.versions.node.startsWith('20.')) expect(withFlagOff).toMatch(/does not compile relaxed SIMD without --experimental-wasm-relaxed-simd/);
    const auto = await createScorer(head, { engine: 'int8', kernelThreads: 1, int8: { minRows: 1024 } });
    expect((auto as unknown as { int8Simd: string }).int8Simd).toBe(withFlagOff ? 'simd128' : 'relaxed');
    await auto.close();

    setFlagsFromString('--experimental-wasm-relaxed-simd');
    const problem = Int8Kernel.relaxedProblem(head.hidden);
    const forced = createScorer(head, { engine: 'int8', kernelThreads: 1, int8: { minRows: 1024, simd: 'relaxed' } });
    if (problem) {
      // Node 20's experimental relaxed SIMD compiles, and gets the sums wrong: never used.
      expect(problem).toMatch(/compile relaxed SIMD|gave -?\d+ where the sum is -?\d+/);
      await expect(forced).rejects.toThrow(problem);
      return;
    }
    // Where it works, its answers are the float32 engine's.
    const relaxed = await forced;
    const exact = await createScorer(head, { engine: 'factorized', kernelThreads: 1 });
    relaxed.add(rows);
    exact.add(rows);
    await Promise.all([relaxed.flush(), exact.flush()]);
    expect((relaxed as unknown as { int8Simd: string }).int8Simd).toBe('relaxed');
    const rng = new Rng(9);
    for (let i = 0; i < 100; i++) {
      const q = rows.slice((i * 7) * head.dim, (i * 7 + 1) * head.dim).map((x) => x + 0.05 * rng.normal());
      expect(await relaxed.search(q, 10)).toEqual(await exact.search(q, 10));
    }
    await Promise.all([relaxed.close(), exact.close()]);
  });
});
