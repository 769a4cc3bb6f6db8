import { CancelledError, DeadlineError, ResourceExhaustedError } from './errors/index.js';

export interface BatcherOptions {
  /** Most inputs run together. */
  maxBatch: number;
  /** Longest an input waits for others before its batch runs (ms). */
  maxDelayMs: number;
  /** Most inputs waiting at once; one more is refused with RESOURCE_EXHAUSTED. Default: unbounded. */
  maxQueue?: number;
}

export interface SubmitOptions {
  /** Epoch ms: an input still waiting then is dropped (DEADLINE_EXCEEDED) instead of run. */
  deadline?: number;
  /** Aborting drops the input if it has not run yet (CANCELLED). */
  signal?: AbortSignal;
  /**
   * Who the input is for (a stream, a peer). Batches take inputs from the
   * waiting lanes in turn, so one lane's backlog cannot starve another's.
   */
  lane?: unknown;
}

interface Pending<I, O> {
  input: I;
  deadline: number;
  signal: AbortSignal | undefined;
  resolve: (v: O) => void;
  reject: (e: Error) => void;
}

/** Why inputs were dropped before running, for metrics. */
export type DropReason = 'deadline' | 'cancelled' | 'overload';

/**
 * Gathers concurrent inputs into batches: a batch runs when it is full or
 * when its oldest input has waited maxDelayMs (0: at once), one batch at a
 * time (the work already uses every core), the next gathering while one runs
 * and starting no sooner than the event loop's next turn.
 * Inputs whose caller gave up (deadline passed, cancelled) are dropped when
 * their batch forms, never run.
 */
export class Batcher<I, O> {
  /** Waiting inputs per lane, lanes in the order they take turns. */
  private readonly lanes = new Map<unknown, Pending<I, O>[]>();
  private waiting = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Batches run so far. */
  runs = 0;
  private readonly maxQueue: number;

  constructor(
    private readonly run: (batch: I[]) => Promise<O[]>,
    private readonly options: BatcherOptions,
    private readonly onBatch: (size: number) => void = () => {},
    private readonly onDrop: (reason: DropReason) => void = () => {},
  ) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${options.maxBatch}`);
    if (!(options.maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${options.maxDelayMs}`);
    this.maxQueue = options.maxQueue ?? Infinity;
    if (!(this.maxQueue >= 1)) throw new RangeError(`maxQueue must be at least 1, got ${options.maxQueue}`);
  }

  /** Inputs waiting (not yet in a running batch). */
  get depth(): number {
    return this.waiting;
  }

  submit(input: I, options: SubmitOptions = {}): Promise<O> {
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted) return reject(new CancelledError());
      if (this.waiting >= this.maxQueue) {
        this.onDrop('overload');
        return reject(new ResourceExhaustedError(`${this.waiting} queries are already waiting (the most this shard queues): retry, or ask another replica`));
      }
      let lane = this.lanes.get(options.lane);
      if (!lane) this.lanes.set(options.lane, (lane = []));
      lane.push({ input, deadline: options.deadline ?? Infinity, signal: options.signal, resolve, reject });
      this.waiting++;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.waiting === 0) return;
    if (this.waiting >= this.options.maxBatch || this.options.maxDelayMs === 0) {
      this.flush();
      return;
    }
    this.timer ??= setTimeout(() => this.flush(), this.options.maxDelayMs);
  }

  /** Up to maxBatch live inputs, one lane at a time in turn; the dead are dropped on the way. */
  private take(): Pending<I, O>[] {
    const batch: Pending<I, O>[] = [];
    const now = Date.now();
    while (batch.length < this.options.maxBatch && this.waiting > 0) {
      // The lane at the front takes one turn, then goes to the back of the line (lanes never stay empty).
      const [key, lane] = this.lanes.entries().next().value!;
      const p = lane.shift()!;
      this.waiting--;
      this.lanes.delete(key);
      if (lane.length > 0) this.lanes.set(key, lane);
      if (p.signal?.aborted) {
        this.onDrop('cancelled');
        p.reject(new CancelledError());
      } else if (p.deadline <= now) {
        this.onDrop('deadline');
        p.reject(new DeadlineError('the call waited past its deadline in the queue; it was not run'));
      } else {
        batch.push(p);
      }
    }
    return batch;
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.waiting === 0) return;
    const batch = this.take();
    if (batch.length === 0) return;
    this.running = true;
    this.runs++;
    this.onBatch(batch.length);
    let work: Promise<O[]>;
    try {
      work = this.run(batch.map((p) => p.input));
    } catch (err) {
      work = Promise.reject(err);
    }
    work
      .then(
        (outputs) => batch.forEach((p, i) => p.resolve(outputs[i])),
        (err: Error) => batch.forEach((p) => p.reject(err)),
      )
      .finally(() => {
        // The next batch waits for the event loop's next turn. Otherwise a scan with no await of its own (the
        // wasm scans) and callers that submit again as soon as they are answered keep this loop in microtasks,
        // and no I/O runs meanwhile: no new call read or refused, no health check, no replication.
        setImmediate(() => {
          this.running = false;
          this.schedule();
        });
      });
  }
}
