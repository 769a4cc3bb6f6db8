import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FenceHeldError } from './errors/index.js';
import { loadScript } from './scripts.js';

const RENEW = loadScript('fence-renew');
const RELEASE = loadScript('fence-release');

/**
 * The store's write fence (StoreKeys.fence), held by one backup or restore at
 * a time: the write scripts refuse every gallery write that does not carry its
 * token. It lives `ttlMs` unless renewed, so a holder that dies (SIGKILL, a
 * lost node) stops writes for at most that long.
 */
export class StoreFence {
  readonly token = randomBytes(12).toString('hex');
  private timer: NodeJS.Timeout | undefined;
  private released: Promise<void> | undefined;

  private constructor(private readonly redis: Redis, private readonly key: string, private readonly ttlMs: number) {}

  /** Takes the fence, or throws FenceHeldError when another holds it. */
  static async acquire(redis: Redis, key: string, ttlMs = 30_000): Promise<StoreFence> {
    if (!(Number.isInteger(ttlMs) && ttlMs >= 1000)) throw new RangeError(`fence ttlMs must be an integer of at least 1000, got ${ttlMs}`);
    const fence = new StoreFence(redis, key, ttlMs);
    if ((await redis.set(key, fence.token, 'PX', ttlMs, 'NX')) !== 'OK') throw new FenceHeldError((await redis.get(key)) ?? '?');
    fence.timer = setInterval(() => void redis.eval(RENEW, 1, key, fence.token, ttlMs).catch(() => undefined), Math.floor(ttlMs / 3));
    fence.timer.unref();
    return fence;
  }

  /** Whether this holder still has it (it lapsed if renewals could not reach Redis for ttlMs). */
  async held(): Promise<boolean> {
    return (await this.redis.get(this.key)) === this.token;
  }

  release(): Promise<void> {
    this.released ??= (async () => {
      clearInterval(this.timer);
      await this.redis.eval(RELEASE, 1, this.key, this.token);
    })();
    return this.released;
  }
}
