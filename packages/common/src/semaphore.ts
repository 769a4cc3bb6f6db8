/**
 * At most `permits` tasks at once; the rest wait in order. For work whose
 * memory grows with what runs together (decoded camera frames).
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly permits: number) {
    if (!Number.isInteger(permits) || permits < 1) throw new RangeError(`a semaphore needs at least 1 permit, got ${permits}`);
  }

  /** Tasks running now. */
  get running(): number {
    return this.active;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.permits) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      // The permit passes straight to the next in line, so a newcomer cannot slip past it.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
