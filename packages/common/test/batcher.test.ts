import { Batcher, type DropReason } from '@yoco/common';
import { describe, expect, it } from 'vitest';

/** A batcher whose runs wait for `release()`, recording what each run was given. */
function gated(options: { maxBatch: number; maxQueue?: number }) {
  const runs: number[][] = [];
  const drops: DropReason[] = [];
  let release: () => void = () => {};
  const batcher = new Batcher<number, number>(
    async (batch) => {
      runs.push(batch);
      await new Promise<void>((r) => (release = r));
      return batch.map((x) => x * 10);
    },
    { maxBatch: options.maxBatch, maxDelayMs: 0, maxQueue: options.maxQueue },
    () => {},
    (reason) => drops.push(reason),
  );
  return { batcher, runs, drops, release: () => release() };
}

const tick = () => new Promise((r) => setImmediate(r));

/** Waits (a turn of the event loop at a time) until `n` batches have started. */
async function started(g: { runs: number[][] }, n: number): Promise<void> {
  for (let i = 0; i < 100 && g.runs.length < n; i++) await tick();
  expect(g.runs.length).toBe(n);
}

/** Releases each batch as it starts until `all` settles. */
async function drain(g: { release(): void }, all: Promise<unknown>): Promise<void> {
  let done = false;
  void all.finally(() => (done = true));
  for (let i = 0; i < 1000 && !done; i++) {
    g.release();
    await tick();
  }
}

describe('Batcher bounds its work', () => {
  it('refuses an input past maxQueue with RESOURCE_EXHAUSTED; the queued ones still run', async () => {
    const g = gated({ maxBatch: 2, maxQueue: 3 });
    const first = g.batcher.submit(1); // runs at once
    await tick();
    const queued = [2, 3, 4].map((x) => g.batcher.submit(x));
    await expect(g.batcher.submit(5)).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect(g.drops).toEqual(['overload']);
    g.release();
    expect(await first).toBe(10);
    await started(g, 2);
    g.release();
    await started(g, 3);
    g.release();
    expect(await Promise.all(queued)).toEqual([20, 30, 40]);
  });

  it('drops inputs whose deadline passed or whose caller cancelled before their batch forms; they never run', async () => {
    const g = gated({ maxBatch: 8 });
    const blocker = g.batcher.submit(0);
    await tick();
    const controller = new AbortController();
    const late = g.batcher.submit(1, { deadline: Date.now() + 5 });
    const cancelled = g.batcher.submit(2, { signal: controller.signal });
    const fine = g.batcher.submit(3, { deadline: Date.now() + 60_000 });
    controller.abort();
    await new Promise((r) => setTimeout(r, 20));
    g.release();
    await blocker;
    await expect(late).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    await expect(cancelled).rejects.toMatchObject({ code: 'CANCELLED' });
    await started(g, 2);
    g.release();
    expect(await fine).toBe(30);
    expect(g.runs).toEqual([[0], [3]]);
    expect(g.drops.sort()).toEqual(['cancelled', 'deadline']);
    await expect(g.batcher.submit(4, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'CANCELLED' });
  });

  it("takes inputs from each lane in turn: one lane's backlog does not hold another lane's input back", async () => {
    const g = gated({ maxBatch: 4 });
    const blocker = g.batcher.submit(-1, { lane: 'flood' });
    await tick();
    const flood = Array.from({ length: 100 }, (_, i) => g.batcher.submit(i, { lane: 'flood' }));
    const other = g.batcher.submit(1000, { lane: 'other' });
    g.release();
    await blocker;
    await started(g, 2);
    // The next batch has the other lane's input, though 100 flood inputs were queued before it.
    expect(g.runs[1]).toContain(1000);
    expect(g.runs[1]).toHaveLength(4);
    await drain(g, Promise.all([other, ...flood]));
    expect(await other).toBe(10000);
    expect((await Promise.all(flood)).length).toBe(100);
  });

  it('leaves the event loop a turn between batches, though the work and its callers never wait on I/O', async () => {
    // A run with no await of its own (as the wasm scans are), and callers that submit again once answered.
    const batcher = new Batcher<number, number>(async (batch) => batch.map((x) => x + 1), { maxBatch: 4, maxDelayMs: 0 });
    let stop = false;
    let timerRan = false;
    let submitted = 0;
    setTimeout(() => {
      timerRan = true;
      stop = true;
    }, 0);
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        // Without a turn for timers and I/O the loop would never end: bounded here, so that shows as a failure.
        while (!stop && submitted < 20_000) {
          expect(await batcher.submit(w)).toBe(w + 1);
          submitted++;
        }
      }),
    );
    expect(timerRan).toBe(true);
    expect(submitted).toBeGreaterThan(0);
    expect(submitted).toBeLessThan(20_000);
  });
});
