import { Worker } from 'node:worker_threads';
import { SCAN_FUNCTIONS, scanModule } from './wasm-module.js';

// Control words shared with each helper: [job seq, done seq, which function, its six arguments, then for a
// shared job: row bytes, output bytes per row, rows per block]. seq -1 = exit.
const SEQ = 0;
const DONE = 1;
const FN = 2;
const ARGS = 3;
const SHARED = ARGS + 6;
// warm(): a count the caller bumps, and how long (µs) the helper then stays awake for the job that follows.
const WARM = SHARED + 3;
const WARM_US = WARM + 1;
const WORDS = WARM_US + 1;
/**
 * A warm helper sleeps in slices this short (ms): its vCPU then never idles long enough to be halted, and it
 * leaves the core to whoever else wants it. Spinning instead was as fast on a quiet machine and 1.7x slower
 * with another process busy on one core (docs/int8.md).
 */
const WARM_SLICE_MS = 0.05;
/** How long join() watches for a helper to finish before it sleeps (ms): about one shared block's scan. */
const JOIN_SPIN_MS = 0.2;

/**
 * A helper thread: waits on its control word, scans the rows it is handed,
 * signals done. A shared job (block rows > 0) is taken a block at a time from
 * the pool's counter, as the calling thread takes it, until none is left.
 */
const HELPER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, control, counter, fns } = workerData;
const ctrl = new Int32Array(control);
const next = new Int32Array(counter);
const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
const score = fns.map((f) => exports[f]);
let seen = 0;
let warmSeen = 0;
// Until then the helper waits in short sleeps, for every job of the query (its projection, then its scan).
let until = 0;
for (;;) {
  const warm = Atomics.load(ctrl, ${WARM});
  if (warm !== warmSeen) {
    warmSeen = warm;
    until = performance.now() + ctrl[${WARM_US}] / 1000;
  }
  while (Atomics.load(ctrl, ${SEQ}) === seen && performance.now() < until) Atomics.wait(ctrl, ${SEQ}, seen, ${WARM_SLICE_MS});
  Atomics.wait(ctrl, ${SEQ}, seen);
  // Woken by warm() (or spuriously): no job yet.
  if (Atomics.load(ctrl, ${SEQ}) === seen) continue;
  seen = Atomics.load(ctrl, ${SEQ});
  if (seen < 0) break;
  const f = score[ctrl[${FN}]];
  const [p, u, w, out, n, hb, rowBytes, outBytes, block] = ctrl.subarray(${ARGS}, ${WORDS});
  if (block === 0) f(p, u, w, out, n, hb);
  else for (let b = Atomics.add(next, 0, 1); b * block < n; b = Atomics.add(next, 0, 1)) {
    const start = b * block;
    f(p + start * rowBytes, u, w, out + start * outBytes, Math.min(block, n - start), hb);
  }
  Atomics.store(ctrl, ${DONE}, seen);
  Atomics.notify(ctrl, ${DONE});
}
`;

interface Helper {
  worker: Worker;
  ctrl: Int32Array;
  seq: number;
}

/** Arguments of one score() / score8() call: pointers into the shared memory, a row count, the row width in bytes. */
export interface ScanJob {
  p: number;
  u: number;
  w: number;
  out: number;
  n: number;
  hb: number;
}

/**
 * Helper threads that run score() on the same shared memory as the calling
 * thread. A job is handed over by writing its arguments into the helper's
 * control words and waking it (no message passing, no copies); the caller
 * then waits for the done word. Workers are unref'ed: an idle pool never
 * holds the process open.
 */
export class ScanPool {
  private readonly helpers: Helper[] = [];
  /** The next block of a shared job (shareRows). */
  private readonly next = new Int32Array(new SharedArrayBuffer(4));

  /** `fns`: the module's exports that helpers may run (six i32 arguments each, as score and score8 take); a job names one by its index. */
  constructor(memory: WebAssembly.Memory, size: number, module: WebAssembly.Module = scanModule(), fns: string[] = SCAN_FUNCTIONS) {
    for (let t = 0; t < size; t++) {
      const control = new SharedArrayBuffer(4 * WORDS);
      const worker = new Worker(HELPER_SOURCE, { eval: true, workerData: { module, memory, control, counter: this.next.buffer, fns } });
      worker.unref();
      this.helpers.push({ worker, ctrl: new Int32Array(control), seq: 0 });
    }
  }

  get size(): number {
    return this.helpers.length;
  }

  /** Starts job on helper i (0-based), running function `fn` (an index into the constructor's fns); join(i) waits for it. */
  post(i: number, job: ScanJob, fn = 0, shared?: [rowBytes: number, outBytes: number, block: number]): void {
    const h = this.helpers[i];
    const c = h.ctrl;
    c.set(shared ?? [0, 0, 0], SHARED);
    c[FN] = fn;
    c[ARGS] = job.p;
    c[ARGS + 1] = job.u;
    c[ARGS + 2] = job.w;
    c[ARGS + 3] = job.out;
    c[ARGS + 4] = job.n;
    c[ARGS + 5] = job.hb;
    Atomics.store(c, SEQ, ++h.seq);
    Atomics.notify(c, SEQ);
  }

  /**
   * Wakes the helpers ahead of the jobs that are coming (a query's
   * projection, then its scan): each then waits for them in short sleeps for
   * up to `us` µs, so each job's post finds it quick to wake. On this VM, waking a
   * thread that has slept a while costs the waker 0.1-0.2 ms and the sleeper
   * as much again before it runs.
   */
  warm(us: number): void {
    for (const h of this.helpers) {
      h.ctrl[WARM_US] = us;
      Atomics.add(h.ctrl, WARM, 1);
      Atomics.notify(h.ctrl, SEQ);
    }
  }

  join(i: number): void {
    const h = this.helpers[i];
    // The helper is most often a block or less from done: watch for it a while before sleeping, since a
    // sleeper woken by its notify runs again only some 30 µs later on this VM (measured: join took 0.03 ms
    // a scan and a projection each).
    const until = performance.now() + JOIN_SPIN_MS;
    while (Atomics.load(h.ctrl, DONE) !== h.seq && performance.now() < until);
    for (;;) {
      const done = Atomics.load(h.ctrl, DONE);
      if (done === h.seq) return;
      Atomics.wait(h.ctrl, DONE, done);
    }
  }

  /**
   * Scans `count` rows in chunks of `chunk`: each chunk is split between this
   * thread (part 0) and the helpers, in parts of at least `minRows`, and
   * `collect` takes its outputs once every part is done. `job(row, slot, n)`
   * says where n rows starting at `row` are and where their outputs go
   * (`slot`: the first row's index in the chunk). Helpers run function `fn`.
   * Parts start at multiples of `align` rows (chunk must be one).
   */
  split(count: number, chunk: number, minRows: number, job: (row: number, slot: number, n: number) => ScanJob, self: (j: ScanJob) => void, collect: (start: number, n: number) => void, fn = 0, align = 1): void {
    const threads = this.size + 1;
    for (let start = 0; start < count; start += chunk) {
      const n = Math.min(chunk, count - start);
      const per = Math.ceil(n / Math.max(1, Math.min(threads, Math.floor(n / minRows))) / align) * align;
      const parts = Math.ceil(n / per);
      for (let t = 1; t < parts; t++) {
        const from = t * per;
        this.post(t - 1, job(start + from, from, Math.min(per, n - from)), fn);
      }
      self(job(start, 0, Math.min(per, n)));
      for (let t = 1; t < parts; t++) this.join(t - 1);
      collect(start, n);
    }
  }

  /**
   * Scans job's n rows (p and out at its first row) in blocks of `block`
   * rows that this thread and every helper take in turn from one counter,
   * whoever is free first, so a thread slowed by anything (a late wake-up,
   * a shared core) takes fewer; returns once all are done.
   */
  shareRows(job: ScanJob, rowBytes: number, outBytes: number, block: number, self: (j: ScanJob) => void, fn = 0): void {
    Atomics.store(this.next, 0, 0);
    for (let i = 0; i < this.helpers.length; i++) this.post(i, job, fn, [rowBytes, outBytes, block]);
    for (let b = Atomics.add(this.next, 0, 1); b * block < job.n; b = Atomics.add(this.next, 0, 1)) {
      const start = b * block;
      self({ ...job, p: job.p + start * rowBytes, out: job.out + start * outBytes, n: Math.min(block, job.n - start) });
    }
    for (let i = 0; i < this.helpers.length; i++) this.join(i);
  }

  async close(): Promise<void> {
    for (const h of this.helpers) {
      Atomics.store(h.ctrl, SEQ, -1);
      Atomics.notify(h.ctrl, SEQ);
    }
    await Promise.all(this.helpers.map((h) => h.worker.terminate()));
    this.helpers.length = 0;
  }
}
