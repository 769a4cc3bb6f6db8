import { setFlagsFromString } from 'node:v8';
import { Rng } from '@yoco/common';
import { createScorer, metricHead } from '@yoco/head';
import { describe, expect, it } from 'vitest';
import { Int8Kernel } from '../src/kernel/int8-kernel.js';
import { unitRows } from './helpers.js';

// Its own file: the V8 flag it turns on stays on in this process.
describe('the relaxed-SIMD int8 kernel', () => {
  it('is used only when asked for, where the runtime compiles it and its sums check out exact; its answers are the float32 engine\'s', async () => {
    const head = metricHead({ dim: 64, hidden: 128, tau: 0.5 });
    const rows = unitRows(3000, head.dim, new Rng(4));
    const withFlagOff = Int8Kernel.relaxedProblem(head.hidden);
    if (process.versions.node.startsWith('20.')) expect(withFlagOff).toMatch(/does not compile relaxed SIMD without --experimental-wasm-relaxed-simd/);
    // auto keeps simd128 whatever the runtime has, and says why in Status.
    const auto = await createScorer(head, { engine: 'int8', kernelThreads: 1, int8: { minRows: 1024 } });
    expect((auto as unknown as { int8Simd: string }).int8Simd).toBe('simd128');
    expect((auto as unknown as { relaxedProblem: string }).relaxedProblem).toMatch(/auto keeps simd128/);
    await auto.close();

    setFlagsFromString('--experimental-wasm-relaxed-simd');
    // With the flag, Node 20's V8 compiles relaxed SIMD; the kernel avoids its miscompiled fused dot-add, so its sums are exact.
    expect(Int8Kernel.relaxedProblem(head.hidden)).toBe('');
    expect(Int8Kernel.relaxedProblem(512)).toBe('');
    const relaxed = await createScorer(head, { engine: 'int8', kernelThreads: 2, int8: { minRows: 1024, simd: 'relaxed' } });
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
    // A batch takes the four-queries-a-look loop (many7).
    const batch = Array.from({ length: 6 }, (_, i) => rows.slice(i * 11 * head.dim, (i * 11 + 1) * head.dim));
    const got = await relaxed.scanMany(batch);
    const want = await exact.scanMany(batch);
    got.logits.forEach((l, qi) => {
      const b = got.bounds![qi]!;
      for (let r = 0; r < got.count; r++) expect(Math.abs(l[r] - want.logits[qi][r])).toBeLessThanOrEqual(b.slack + b.rowSlack[r]);
    });
    await Promise.all([relaxed.close(), exact.close()]);
  });
});
