export interface BatcherOptions {
  /** Most inputs run together. */
  maxBatch: number;
  /** Longest an input waits for others before its batch runs (ms). */
  maxDelayMs: number;
}

interface Pending<I, O> {
  input: I;
  resolve: (v: O) => void;
  reject: (e: Error) => void;
}

/**
 * Gathers concurrent inputs into batches: a batch runs when it is full or
 * when its oldest input has waited maxDelayMs (0: at once), one batch at a
 * time (the work already uses every core), the next gathering while one runs.
 */
export class Batcher<I, O> {
  private readonly queue: Pending<I, O>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Batches run so far. */
  runs = 0;

  constructor(
    private readonly run: (batch: I[]) => Promise<O[]>,
    private readonly options: BatcherOptions,
    private readonly onBatch: (size: number) => void = () => {},
  ) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${options.maxBatch}`);
    if (!(options.maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${options.maxDelayMs}`);
  }

  get depth(): number {
    return this.queue.length;
  }

  submit(input: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    if (this.queue.length >= this.options.maxBatch || this.options.maxDelayMs === 0) {
      this.flush();
      return;
    }
    this.timer ??= setTimeout(() => this.flush(), this.options.maxDelayMs);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.options.maxBatch);
    this.running = true;
    this.runs++;
    this.onBatch(batch.length);
    this.run(batch.map((p) => p.input))
      .then(
        (outputs) => batch.forEach((p, i) => p.resolve(outputs[i])),
        (err: Error) => batch.forEach((p) => p.reject(err)),
      )
      .finally(() => {
        this.running = false;
        this.schedule();
      });
  }
}
