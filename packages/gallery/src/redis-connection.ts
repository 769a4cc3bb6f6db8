import { Redis, type RedisOptions } from 'ioredis';

/**
 * What a connection is for, which decides what a command does while Redis is
 * unreachable; reconnecting is the same for all (see connectRedis).
 * - request: a caller is waiting (the Matcher, the queue's producer): fail at
 *   once, queue nothing to send later, so the caller hears UNAVAILABLE now;
 * - follower: a shard following the stream: a command waits for a couple of
 *   reconnects before failing, and the follower retries with its own backoff;
 * - worker: BullMQ's worker and its blocking reads, which require commands
 *   to wait for as long as it takes (maxRetriesPerRequest null);
 * - tool: the CLI and tests: ioredis' defaults.
 */
export type RedisPurpose = 'request' | 'follower' | 'worker' | 'tool';

const PURPOSES: Record<RedisPurpose, RedisOptions> = {
  request: { maxRetriesPerRequest: 1, enableOfflineQueue: false },
  follower: { maxRetriesPerRequest: 2, enableOfflineQueue: true },
  worker: { maxRetriesPerRequest: null },
  tool: {},
};

/** One reconnect policy for every process: quickly at first, then every 2 s, forever. */
export function reconnectDelay(attempt: number): number {
  return Math.min(attempt * 100, 2000);
}

/**
 * The one way this project opens a Redis connection. `onError` hears
 * connection errors (ioredis emits them on every failed reconnect; an
 * unheard one is printed as unhandled).
 */
export function connectRedis(url: string, purpose: RedisPurpose, onError: (err: Error) => void = () => undefined, extra: RedisOptions = {}): Redis {
  const redis = new Redis(url, { retryStrategy: reconnectDelay, ...PURPOSES[purpose], ...extra });
  redis.on('error', onError);
  return redis;
}
