import { Rng } from '@yoco/common';
import { createScorer, metricHead, type Scorer } from '@yoco/head';
import { afterEach, describe, expect, it } from 'vitest';
import { randomHead, unitRows } from './helpers.js';

const open: Scorer[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

async function make(engine: 'factorized' | 'resident', head: ReturnType<typeof metricHead>): Promise<Scorer> {
  const s = await createScorer(head, { engine, kernelThreads: 1, resident: engine === 'resident' ? { segmentRows: 1000 } : undefined });
  open.push(s);
  return s;
}

describe('the resident engine (P sealed into ONNX Runtime sessions)', () => {
  it.each([
    ['the metric head (D=64, H=128)', () => metricHead({ dim: 64, hidden: 128, tau: 0.5 })],
    ['a random conv head (D=48, H=100)', () => randomHead(48, 100, 3)],
  ])('with %s: answers as the float32 engine does over sealed segments and the growing one, as rows come and go', async (_, makeHead) => {
    const head = makeHead();
    const rng = new Rng(6);
    const rows = unitRows(2500, head.dim, rng);
    const [exact, resident] = await Promise.all([make('factorized', head), make('resident', head)]);
    expect(resident.engine).toBe('resident');
    const compare = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const q = rows.slice((i * 37 % 2500) * head.dim, (i * 37 % 2500 + 1) * head.dim).map((x) => x + 0.1 * rng.normal() / Math.sqrt(head.dim));
        const [a, b] = await Promise.all([exact.search(q, 10), resident.search(q, 10)]);
        expect(b.map((m) => m.index)).toEqual(a.map((m) => m.index));
        for (let j = 0; j < a.length; j++) expect(Math.abs(b[j].logit - a[j].logit)).toBeLessThan(1e-4 * (1 + Math.abs(a[j].logit)));
      }
    };
    for (const s of [exact, resident]) s.add(rows.subarray(0, 1500 * head.dim));
    await Promise.all([exact.flush(), resident.flush()]);
    await compare(20); // one sealed segment, 500 rows growing
    for (const s of [exact, resident]) s.add(rows.subarray(1500 * head.dim));
    await Promise.all([exact.flush(), resident.flush()]);
    await compare(20); // two sealed, 500 growing
    expect((resident as unknown as { resident: { sealed: number } }).resident.sealed).toBe(2);
    for (const s of [exact, resident]) for (let r = 0; r < 2500; r += 3) s.remove(r);
    await compare(20); // removed rows, sealed ones included, are never returned
    const { scorer: compacted } = resident.compact();
    open.push(compacted);
    const q = rows.slice(1 * head.dim, 2 * head.dim);
    expect((await compacted.search(q, 5)).map((m) => m.logit)).toEqual((await resident.search(q, 5)).map((m) => m.logit));
  });
});
