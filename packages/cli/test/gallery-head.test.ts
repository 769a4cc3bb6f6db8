import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { galleryHead, HEAD_RECORD } from '@yoco/cli';
import { describe, expect, it } from 'vitest';

const local = { redisUrl: '', prefix: 'yoco:', redisHa: false };
const metric = async () => 'metric-id';

describe("npm start's gallery head (which head a data directory's gallery was scored with)", () => {
  it('a new data directory has none: the trained head may be adopted', async () => {
    expect(await galleryHead(local, mkdtempSync(join(tmpdir(), 'yoco-head-')), metric)).toBeUndefined();
  });

  it('a data directory whose Redis predates the record was scored by the metric head (all npm start ran then)', async () => {
    // What failed before: such a gallery got the trained head, and every shard refused it (HEAD_MISMATCH).
    const dir = mkdtempSync(join(tmpdir(), 'yoco-head-'));
    mkdirSync(join(dir, 'redis'));
    expect(await galleryHead(local, dir, metric)).toBe('metric-id');
    expect(await galleryHead({ ...local, redisHa: true }, dir, metric)).toBeUndefined();
  });

  it('otherwise the head the last start recorded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'yoco-head-'));
    mkdirSync(join(dir, 'redis'));
    writeFileSync(join(dir, HEAD_RECORD), JSON.stringify({ head_id: 'd3ce0754501e6206' }));
    expect(await galleryHead(local, dir, metric)).toBe('d3ce0754501e6206');
  });
});

describe.skipIf(!process.env.REDIS_URL)('with REDIS_URL', () => {
  it("the store's own record", async () => {
    const { connectRedis, GalleryStore } = await import('@yoco/gallery');
    const prefix = `test:gallery-head:${process.pid}:`;
    const redis = connectRedis(process.env.REDIS_URL!, 'tool');
    try {
      const config = { redisUrl: process.env.REDIS_URL!, prefix, redisHa: false };
      expect(await galleryHead(config, '/nonexistent', metric)).toBeUndefined();
      await new GalleryStore(redis, { prefix, dim: 3840 }).checkMeta('abc123');
      expect(await galleryHead(config, '/nonexistent', metric)).toBe('abc123');
    } finally {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
  });
});
