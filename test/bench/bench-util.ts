import { createRequire } from 'node:module';
import { cpus, totalmem } from 'node:os';
import { startRedisServer } from '@yoco/devkit';
import { GalleryStore } from '@yoco/gallery';
import { Redis } from 'ioredis';

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

/** Nearest-rank percentile. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function machineInfo(): Record<string, unknown> {
  const require = createRequire(import.meta.url);
  const ortVersion = (require('onnxruntime-node/package.json') as { version: string }).version;
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    onnxruntime_node: ortVersion,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  };
}

export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
  console.log(line(header));
  console.log('|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|');
  for (const r of rows) console.log(line(r));
}

/** Runs fn(0..total-1), `concurrency` at a time; returns each call's ms and the wall-clock seconds. */
export async function timeConcurrently(total: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<{ times: number[]; seconds: number }> {
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t = performance.now();
        await fn(i);
        times.push(performance.now() - t);
      }
    }),
  );
  return { times, seconds: (performance.now() - started) / 1000 };
}

export interface BenchStore {
  redisUrl: string;
  prefix: string;
  redis: Redis;
  store: GalleryStore;
  /** Deletes the bench's keys and stops the Redis it started. */
  cleanup(): Promise<void>;
}

/** REDIS_URL or a private redis-server, and a gallery store under a prefix of this run's own. */
export async function benchStore(name: string, dim: number): Promise<BenchStore> {
  const server = process.env.REDIS_URL ? undefined : await startRedisServer();
  const redisUrl = process.env.REDIS_URL ?? server!.url;
  const prefix = `bench:${name}:${process.pid}:`;
  const redis = new Redis(redisUrl);
  const store = new GalleryStore(redis, { prefix, dim });
  await store.checkMeta();
  return {
    redisUrl,
    prefix,
    redis,
    store,
    async cleanup() {
      const keys = await redis.keys(`${prefix}*`);
      for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
      redis.disconnect();
      await server?.stop();
    },
  };
}
