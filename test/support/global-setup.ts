import { startRedisServer, type RedisServerHandle } from '@yoco/devkit';

let redis: RedisServerHandle | undefined;

/** Integration tests need a real Redis: REDIS_URL (CI starts one), else a private redis-server for this run. */
export async function setup(): Promise<void> {
  if (process.env.REDIS_URL) return;
  redis = await startRedisServer();
  process.env.REDIS_URL = redis.url;
}

export async function teardown(): Promise<void> {
  await redis?.stop();
}
