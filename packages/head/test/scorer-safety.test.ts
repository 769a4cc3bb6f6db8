import { Rng } from '@yoco/common';
import { CapacityError, createScorer, metricHead, ReferenceScorer, type EngineName, type Head, type Scorer } from '@yoco/head';
import { afterEach, describe, expect, it } from 'vitest';
import { randomHead, randomRows } from './helpers.js';

const open: Scorer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function scorer(head: Head, engine: EngineName = 'factorized', extra: object = {}): Promise<Scorer> {
  const s = await createScorer(head, { engine, kernelThreads: 1, ...extra });
  open.push(s);
  return s;
}

function reference(head: Head, rows: Float32Array, q: Float32Array): Float64Array {
  const D = head.dim;
  return Float64Array.from({ length: rows.length / D }, (_, i) => ReferenceScorer.pairLogit(head, q, rows.subarray(i * D, (i + 1) * D)));
}

describe('a scan reads only complete rows', () => {
  it('rows added while a scan is under way are left out of it, never scored as b2 or stale buffer contents', async () => {
    // Large b2: an unprojected row scored as b2 alone would be a confident (and false) accept.
    const head = metricHead({ dim: 64, hidden: 32, alpha: 8, tau: 1 });
    const s = await scorer(head);
    const rng = new Rng(7);
    const a = randomRows(2000, 64, 1).map((x) => x * 0.2);
    const b = randomRows(6000, 64, 2).map((x) => x * 0.2);
    s.add(a);
    await s.flush();
    let checked = 0;
    for (let round = 0; round < 6; round++) {
      const q = Float32Array.from(rng.normals(64, 0.2));
      const scan = s.scan(q);
      // Counted now, projected in the background: the scan already in flight must not read them.
      s.add(b);
      const { logits, alive, count } = await scan;
      const all = new Float32Array(a.length + (round + 1) * b.length);
      all.set(a);
      for (let r = 0; r <= round; r++) all.set(b, a.length + r * b.length);
      const want = reference(head, all.subarray(0, count * 64), q);
      expect(count).toBeLessThanOrEqual(all.length / 64);
      for (let i = 0; i < count; i++) {
        if (!alive[i]) continue;
        expect(Math.abs(logits[i] - want[i]), `row ${i} of ${count} (round ${round})`).toBeLessThan(1e-3);
        checked++;
      }
      expect(count).toBeGreaterThanOrEqual((a.length + round * b.length) / 64);
      await s.flush();
    }
    expect(checked).toBeGreaterThan(12_000);
  });
});

describe('a failed projection', () => {
  it('fails only its own rows: they are dead and reported, later rows keep their indices and scores, nothing wedges', async () => {
    const head = randomHead(16, 8, 3);
    const faults: number[] = [];
    const s = await scorer(head, 'factorized', { onFault: (_: Error, rows: number) => faults.push(rows) });
    const a = randomRows(30, 16, 4);
    const b = randomRows(20, 16, 5);
    s.add(a.subarray(0, 10 * 16));
    await s.flush();
    // One projection fails (ORT could not allocate, say); the next ones work again.
    const sessions = (s as unknown as { projections: { sessions: { rows: { run: (...args: unknown[]) => Promise<unknown> } } } }).projections.sessions;
    const run = sessions.rows.run.bind(sessions.rows);
    sessions.rows.run = async () => {
      sessions.rows.run = run;
      throw new Error('out of memory (injected)');
    };
    s.add(a.subarray(10 * 16));
    s.add(b);
    await s.flush();
    expect(faults).toEqual([20]);
    expect(s.size).toBe(50);
    expect(s.live).toBe(30);
    const q = Float32Array.from(new Rng(6).normals(16));
    const logits = await s.logits(q);
    const want = reference(head, new Float32Array([...a.subarray(0, 160), ...new Float32Array(320), ...b]), q);
    for (let i = 0; i < 50; i++) {
      if (i >= 10 && i < 30) expect(Number.isNaN(logits[i]), `lost row ${i}`).toBe(true);
      else expect(Math.abs(logits[i] - want[i]), `row ${i}`).toBeLessThan(1e-4);
    }
    // The slice above it still removes a lost row as if it were there.
    expect(() => s.remove(15)).not.toThrow();
    expect((await s.search(q, 100)).map((m) => m.index).every((i) => i < 10 || i >= 30)).toBe(true);
    const { scorer: compacted, map } = s.compact();
    open.push(compacted);
    expect(compacted.size).toBe(30);
    expect(map[15]).toBe(-1);
    expect(map[30]).toBe(10);
  });
});

describe('capacity', () => {
  it('a scorer refuses rows past its capacity before anything changes; the factorized one stops short of wasm32 memory', async () => {
    const head = randomHead(8, 4, 8);
    const s = await scorer(head, 'factorized', { maxRows: 100 });
    s.add(randomRows(90, 8, 9));
    expect(() => s.add(randomRows(11, 8, 10))).toThrow(CapacityError);
    expect(s.size).toBe(90);
    s.add(randomRows(10, 8, 11));
    expect(s.size).toBe(100);
    await s.flush();
    const big = await scorer(metricHead({ dim: 8, hidden: 512 }));
    // 4 GiB of 2 KiB rows, less the scan's scratch at the front.
    expect(big.capacity).toBeGreaterThan(2_090_000);
    expect(big.capacity).toBeLessThan(2 ** 32 / 2048);
  });
});

describe.each<EngineName>(['factorized', 'yoco', 'reference'])('%s: compact() and fresh()', (engine) => {
  it('compact() keeps exactly the live rows, in order, with the same scores; fresh() starts empty with the same head', async () => {
    const head = randomHead(12, 8, 12);
    const s = await scorer(head, engine);
    const rows = randomRows(300, 12, 13);
    s.add(rows);
    for (let i = 0; i < 300; i += 3) s.remove(i);
    await s.flush();
    const q = Float32Array.from(new Rng(14).normals(12));
    const before = await s.logits(q);
    const { scorer: next, map } = s.compact();
    open.push(next);
    expect(next.size).toBe(200);
    expect(next.dead).toBe(0);
    const after = await next.logits(q);
    for (let i = 0; i < 300; i++) {
      if (i % 3 === 0) expect(map[i]).toBe(-1);
      else expect(Math.abs(after[map[i]] - before[i])).toBeLessThan(1e-5);
    }
    expect((await next.search(q, 5)).map((m) => m.index)).toEqual((await s.search(q, 5)).map((m) => map[m.index]));
    // The old scorer is untouched (searches running on it finish), and both close independently.
    expect(s.size).toBe(300);
    const empty = s.fresh();
    open.push(empty);
    expect(empty.size).toBe(0);
    empty.add(rows.subarray(0, 12));
    expect(Math.abs((await empty.logits(q))[0] - reference(head, rows.subarray(0, 12), q)[0])).toBeLessThan(1e-4);
    await s.close();
    expect((await next.logits(q)).length).toBe(200);
  });
});
