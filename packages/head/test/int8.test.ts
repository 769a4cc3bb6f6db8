import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Rng } from '@yoco/common';
import { createScorer, metricHead, parseHead, type Head, type Scorer } from '@yoco/head';
import { afterEach, describe, expect, it } from 'vitest';
import { Int8Kernel } from '../src/kernel/int8-kernel.js';
import { randomHead, unitRows } from './helpers.js';

const open: Scorer[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});


async function scorer(head: Head, engine: 'factorized' | 'int8', rows: Float32Array): Promise<Scorer> {
  // int8 from 1024 rows (not the default 8192): the tests' galleries are small.
  const s = await createScorer(head, { engine, kernelThreads: 1, int8: engine === 'int8' ? { minRows: 1024 } : undefined });
  open.push(s);
  s.add(rows);
  await s.flush();
  return s;
}

describe('the int8 kernel', () => {
  it('computes sum_j v_j relu(q_ij + r_j) exactly as integer arithmetic does, padding and extremes included', () => {
    const rng = new Rng(1);
    for (const hidden of [5, 16, 37, 512]) {
      const k = new Int8Kernel(hidden);
      const n = 300;
      const q = Int8Array.from({ length: n * hidden }, (_, i) => (i % 97 === 0 ? -128 : i % 89 === 0 ? 127 : Math.floor(rng.next() * 256) - 128));
      const v = Int16Array.from({ length: hidden }, (_, j) => (j === 0 ? 2047 : j === 1 ? -2047 : Math.floor(rng.next() * 4095) - 2047));
      const r = Int16Array.from({ length: hidden }, (_, j) => (j === 2 ? 32000 : j === 3 ? -32000 : Math.floor(rng.next() * 600) - 300));
      k.setWeights(v);
      k.append(q, n);
      const out = new Int32Array(n);
      k.run(r, out);
      for (let i = 0; i < n; i++) {
        let want = 0;
        for (let j = 0; j < hidden; j++) want += v[j] * Math.max(0, q[i * hidden + j] + r[j]);
        expect(out[i], `hidden ${hidden}, row ${i}`).toBe(want);
      }
    }
  });
  it('a single-query scan past one chunk of rows (524288) gives every row its logit and every block its largest bound (logit + the row\'s slack), shared by two threads, with a last block short, scan after scan', async () => {
    const rng = new Rng(6);
    const hidden = 16;
    const n = 600_003;
    const k = new Int8Kernel(hidden, 2);
    const v = Int16Array.from({ length: hidden }, () => Math.floor(rng.next() * 4095) - 2047);
    const q = Int8Array.from({ length: n * hidden }, () => Math.floor(rng.next() * 256) - 128);
    // Slack large enough to move a block's largest off its largest logit: every chunk's own slack must be the one added.
    const slack = Float32Array.from({ length: n }, () => rng.next() * 2000);
    k.setWeights(v);
    // In two appends, the second after a scan has moved past the first chunk: its slack still lands where it is read.
    const first = 550_001;
    k.append(q.subarray(0, first * hidden), first, slack.subarray(0, first));
    k.logitsOf(new Int16Array(hidden), first, { t: 1, bases: [0] }, new Float64Array(first));
    k.append(q.subarray(first * hidden), n - first, slack.subarray(first));
    expect(Array.from(k.rowSlack())).toEqual(Array.from(slack));
    for (let scan = 0; scan < 2; scan++) {
      const r = Int16Array.from({ length: hidden }, () => Math.floor(rng.next() * 300) - 150);
      const affine = { t: 0.003, bases: [-1.5] };
      const logits = k.logitsOf(r, n, affine, new Float64Array(n));
      const blocks = k.blocks();
      const wrong: string[] = [];
      let max = -Infinity;
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let j = 0; j < hidden; j++) sum += v[j] * Math.max(0, q[i * hidden + j] + r[j]);
        const want = affine.t * sum + affine.bases[0];
        if (logits[i] !== want && wrong.length < 5) wrong.push(`scan ${scan}, row ${i}: ${logits[i]}, want ${want}`);
        max = Math.max(max, want + slack[i]);
        if ((i + 1) % 16 === 0 || i === n - 1) {
          if (blocks[i >> 4] !== max && wrong.length < 5) wrong.push(`scan ${scan}, block ${i >> 4}: ${blocks[i >> 4]}, want ${max}`);
          max = -Infinity;
        }
      }
      expect(logits.length).toBe(n);
      expect(wrong).toEqual([]);
    }
    await k.close();
  });

  it('rows stored in pairs: appended in runs of odd length, an odd and an even row cleared, every scan reads each row its own bytes', async () => {
    const rng = new Rng(8);
    for (const hidden of [37, 512]) {
      const k = new Int8Kernel(hidden, 1);
      const v = Int16Array.from({ length: hidden }, () => Math.floor(rng.next() * 4095) - 2047);
      k.setWeights(v);
      const n = 1001;
      const q = Int8Array.from({ length: n * hidden }, () => Math.floor(rng.next() * 256) - 128);
      // Runs of 1, 2, 3, ... rows: each starts at either half of a pair.
      for (let at = 0, len = 1; at < n; at += len, len++) k.append(q.subarray(at * hidden, Math.min(n, at + len) * hidden), Math.min(len, n - at));
      for (const row of [7, 500]) {
        k.clear(row);
        q.fill(0, row * hidden, (row + 1) * hidden);
      }
      const rs = Array.from({ length: 5 }, () => Int16Array.from({ length: hidden }, () => Math.floor(rng.next() * 300) - 150));
      const want = (r: Int16Array, i: number) => {
        let sum = 0;
        for (let j = 0; j < hidden; j++) sum += v[j] * Math.max(0, q[i * hidden + j] + r[j]);
        return sum;
      };
      const outs = rs.map(() => new Int32Array(n));
      k.runMany(rs, outs);
      const alone = new Float64Array(n);
      const wrong: string[] = [];
      for (const [x, r] of rs.entries()) {
        // Odd row counts too: a scan's last row alone, after whole pairs.
        for (const rows of [n, n - 1, 1]) {
          k.run(r, alone, rows, { t: 1, bases: [0] });
          for (let i = 0; i < rows; i++) if (alone[i] !== want(r, i) && wrong.length < 5) wrong.push(`hidden ${hidden}, query ${x}, ${rows} rows: row ${i}`);
        }
        for (let i = 0; i < n; i++) if (outs[x][i] !== want(r, i) && wrong.length < 5) wrong.push(`hidden ${hidden}, batch query ${x}: row ${i}`);
      }
      expect(wrong).toEqual([]);
      await k.close();
    }
  });

  it('runMany gives each query of a batch what run gives it alone: groups of four, a short last group, blocks and threads', async () => {
    const rng = new Rng(5);
    for (const { hidden, n, threads } of [{ hidden: 48, n: 17_000, threads: 2 }, { hidden: 512, n: 1000, threads: 1 }]) {
      const k = new Int8Kernel(hidden, threads);
      k.setWeights(Int16Array.from({ length: hidden }, () => Math.floor(rng.next() * 4095) - 2047));
      k.append(Int8Array.from({ length: n * hidden }, () => Math.floor(rng.next() * 256) - 128), n);
      for (const nq of [2, 5, 16]) {
        const rs = Array.from({ length: nq }, () => Int16Array.from({ length: hidden }, () => Math.floor(rng.next() * 300) - 150));
        const outs = rs.map(() => new Int32Array(n));
        k.runMany(rs, outs);
        rs.forEach((r, q) => {
          const alone = new Int32Array(n);
          k.run(r, alone);
          let differ = 0;
          for (let i = 0; i < n; i++) if (outs[q][i] !== alone[i]) differ++;
          expect(differ, `hidden ${hidden}, ${nq} queries, query ${q}`).toBe(0);
          expect(alone.some((x) => x !== 0)).toBe(true);
        });
      }
      await k.close();
    }
  });
});

describe('the int8 engine', () => {
  const torchHead = () => parseHead(readFileSync(fileURLToPath(new URL('./fixtures/torch-conv-opset17.onnx', import.meta.url))));
  const heads: [string, () => Head][] = [
    ['the metric head (D=64, H=128)', () => metricHead({ dim: 64, hidden: 128, tau: 0.5 })],
    ['a random conv head (D=48, H=512)', () => randomHead(48, 512, 7)],
    ['a torch-exported head (D=6, H=5)', torchHead],
  ];

  it.each(heads)('with %s: every approximate logit is within its stated bound of the float32 one', async (_, make) => {
    const head = make();
    const rng = new Rng(2);
    const rows = unitRows(3000, head.dim, rng);
    const exact = await scorer(head, 'factorized', rows);
    const int8 = await scorer(head, 'int8', rows);
    expect(int8.engine).toBe('int8');
    for (let q = 0; q < 20; q++) {
      const query = unitRows(1, head.dim, rng);
      const want = await exact.logits(query);
      const { logits, bounds, count } = await int8.scan(query);
      expect(bounds).toBeDefined();
      let worst = 0;
      for (let i = 0; i < count; i++) {
        const err = Math.abs(logits[i] - want[i]);
        expect(err, `row ${i}`).toBeLessThanOrEqual(bounds!.slack + bounds!.rowSlack[i]);
        worst = Math.max(worst, err / (bounds!.slack + bounds!.rowSlack[i]));
      }
      // exact() is the float32 engine's number, bit for bit.
      const rowsAsked = [0, 17, count - 1];
      expect(Array.from(bounds!.exact(rowsAsked))).toEqual(rowsAsked.map((r) => want[r]));
      expect(worst).toBeGreaterThan(0);
    }
  });

  it.each(heads)('with %s: search() gives the float32 row-level top-10, bit for bit', async (_, make) => {
    const head = make();
    const rng = new Rng(5);
    const rows = unitRows(3000, head.dim, rng);
    const exact = await scorer(head, 'factorized', rows);
    const int8 = await scorer(head, 'int8', rows);
    for (let q = 0; q < 200; q++) {
      const query = unitRows(1, head.dim, rng);
      expect(await int8.search(query, 10)).toEqual(await exact.search(query, 10));
    }
  });

  it('past 20480 rows a search reads only the blocks that can reach its floor: the float32 top-10 still, with removed rows among the best, on two threads', async () => {
    const head = metricHead({ dim: 64, hidden: 128, tau: 0.5 });
    const rng = new Rng(8);
    const n = 24000;
    const rows = unitRows(n, head.dim, rng);
    const [exact, int8] = await Promise.all((['factorized', 'int8'] as const).map(async (engine) => {
      const s = await createScorer(head, { engine, kernelThreads: 2 });
      open.push(s);
      s.add(rows);
      await s.flush();
      return s;
    }));
    const removed = new Set<number>();
    for (let q = 0; q < 300; q++) {
      const near = rng.int(n);
      const query = q % 3 === 0 ? unitRows(1, head.dim, rng) : Float32Array.from(rows.subarray(near * head.dim, (near + 1) * head.dim), (x) => x + 0.02 * rng.normal());
      // Every fifth query first removes the row it was taken from: the best block's best row is then dead.
      if (q % 5 === 1 && !removed.has(near)) {
        removed.add(near);
        for (const s of [exact, int8]) s.remove(near);
      }
      const want = await exact.search(query, 10);
      expect(await int8.search(query, 10)).toEqual(want);
      // The scan's blocks: each one's largest bound, approximate logit plus the row's own slack, as a search adds them.
      const { logits, bounds, count } = await int8.scan(query);
      const blocks = bounds!.blocks!;
      const wrong: string[] = [];
      for (let b = 0; b * blocks.rows < count; b++) {
        const end = Math.min(count, (b + 1) * blocks.rows);
        let max = -Infinity;
        for (let r = b * blocks.rows; r < end; r++) max = Math.max(max, logits[r] + bounds!.rowSlack[r]);
        if (blocks.max[b] !== max) wrong.push(`block ${b}: max ${blocks.max[b]}, its rows' ${max}`);
      }
      expect(bounds!.rowSlack.some((x) => x > 0)).toBe(true);
      expect(wrong).toEqual([]);
    }
    // A batch's queries get the same blocks from one pass over the rows, and the float32 answers.
    const batch = Array.from({ length: 5 }, () => unitRows(1, head.dim, rng));
    const many = await int8.scanMany(batch);
    for (const [i, q] of batch.entries()) {
      const want = Array.from((await int8.scan(q)).bounds!.blocks!.max.subarray(0, Math.ceil(many.count / 16)));
      expect(Array.from(many.bounds![i]!.blocks!.max.subarray(0, want.length))).toEqual(want);
    }
  });

  it('below 1024 rows it scans in float32 (no scale to fit yet), then fits one and keeps it as rows arrive', async () => {
    const head = metricHead({ dim: 32, hidden: 64, tau: 0.5 });
    const rng = new Rng(4);
    const s = await createScorer(head, { engine: 'int8', kernelThreads: 1, int8: { minRows: 1024 } });
    open.push(s);
    s.add(unitRows(500, 32, rng));
    await s.flush();
    expect((await s.scan(unitRows(1, 32, rng))).bounds).toBeUndefined();
    s.add(unitRows(600, 32, rng));
    await s.flush();
    expect((await s.scan(unitRows(1, 32, rng))).bounds).toBeDefined();
    // Rows after the fit are quantised too; a removed row is cleared in both copies and never answers.
    const late = s.add(unitRows(10, 32, rng));
    s.remove(late);
    await s.flush();
    const { bounds, count } = await s.scan(unitRows(1, 32, rng));
    expect(count).toBe(1110);
    expect(bounds!.rowSlack.length).toBeGreaterThanOrEqual(1110);
  });

  it('by default a gallery under 8192 rows is scanned in float32, where that is faster', async () => {
    const head = metricHead({ dim: 16, hidden: 32, tau: 0.5 });
    const rng = new Rng(6);
    const s = await createScorer(head, { engine: 'int8', kernelThreads: 1 });
    open.push(s);
    s.add(unitRows(3000, 16, rng));
    await s.flush();
    expect((await s.scan(unitRows(1, 16, rng))).bounds).toBeUndefined();
    s.add(unitRows(6000, 16, rng));
    await s.flush();
    expect((await s.scan(unitRows(1, 16, rng))).bounds).toBeDefined();
    await expect(createScorer(head, { engine: 'int8', int8: { minRows: 10 } })).rejects.toThrow(/minRows/);
  });
});
