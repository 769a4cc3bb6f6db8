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
 * Where a Redis reached through Sentinel is, as one string:
 * `redis-sentinel://[:password@]host:port[,host:port...]/masterName[?sentinelPassword=...]`.
 * Every place that takes a Redis URL takes this too.
 */
export const SENTINEL_SCHEME = 'redis-sentinel:';

/** The ioredis options of a redis-sentinel:// target; undefined for a plain redis:// URL. */
export function sentinelOptions(url: string): RedisOptions | undefined {
  if (!url.startsWith(`${SENTINEL_SCHEME}//`)) return undefined;
  const m = /^redis-sentinel:\/\/(?:([^@/]*)@)?([^/?]+)\/([^/?]+)(?:\?(.*))?$/.exec(url);
  if (!m) throw new Error(`'${url.replace(/\/\/[^@/]*@/, '//***@')}' is not redis-sentinel://[:password@]host:port[,host:port]/masterName`);
  const [, auth, hosts, name, query] = m;
  const sentinels = hosts.split(',').map((h) => {
    const i = h.lastIndexOf(':');
    return { host: h.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(h.slice(i + 1)) };
  });
  if (sentinels.some((s) => !s.host || !(s.port > 0))) throw new Error(`a sentinel address in '${hosts}' is not host:port`);
  const password = auth ? decodeURIComponent(auth.replace(/^[^:]*:/, '')) : undefined;
  const sentinelPassword = new URLSearchParams(query ?? '').get('sentinelPassword') ?? undefined;
  return {
    sentinels,
    name: decodeURIComponent(name),
    password: password || undefined,
    sentinelPassword,
    // No failoverDetector: with it, BullMQ's worker stopped taking jobs after a failover (the outside
    // check's npm start never wrote again); a broken connection asks the sentinels anew anyway.
    sentinelRetryStrategy: reconnectDelay,
  };
}

/**
 * The one way this project opens a Redis connection: a redis:// URL, or a
 * redis-sentinel:// target (then ioredis asks the sentinels for the primary,
 * and again after every failover, so no process needs a restart). `onError`
 * hears connection errors (ioredis emits them on every failed reconnect; an
 * unheard one is printed as unhandled).
 */
export function connectRedis(url: string, purpose: RedisPurpose, onError: (err: Error) => void = () => undefined, extra: RedisOptions = {}): Redis {
  const options: RedisOptions = { retryStrategy: reconnectDelay, ...PURPOSES[purpose], ...extra };
  const sentinel = sentinelOptions(url);
  const redis = sentinel ? new Redis({ ...sentinel, ...options }) : new Redis(url, options);
  redis.on('error', onError);
  return redis;
}
