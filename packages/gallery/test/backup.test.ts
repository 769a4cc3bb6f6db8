import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@yoco/common';
import { backupStore, BackupFileError, GallerySlice, GalleryStore, ownedSlots, RemovalLogFile, restoreStore, SliceFollower, StoreFencedError, StoreKeys, compareStreamIds } from '@yoco/gallery';
import { startRedisServer } from '@yoco/devkit';
import { createScorer, metricHead } from '@yoco/head';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { unitVector } from '../../../test/support/cluster.js';
import { flushPrefix, keysUnder, redisUrl, testPrefix } from '../../../test/support/redis.js';

const DIM = 16;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const unit = (rng: Rng) => unitVector(rng, DIM);

async function setup(name: string, url = redisUrl(), streamMaxLen?: number) {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  const prefix = testPrefix(name);
  const store = new GalleryStore(redis, { prefix, dim: DIM, streamMaxLen });
  await store.checkMeta();
  const dir = mkdtempSync(join(tmpdir(), 'yoco-backup-'));
  cleanups.push(async () => {
    await flushPrefix(redis, prefix);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });
  return { redis, prefix, store, dir, keys: new StoreKeys(prefix) };
}

/** Everything a prefix holds, key by key (values as DUMP would not compare: hashes and streams read out). */
async function contents(redis: Redis, prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const k of await keysUnder(redis, prefix)) {
    const type = await redis.type(k);
    const name = k.slice(prefix.length);
    if (type === 'hash') out[name] = Object.fromEntries(Object.entries(await redis.hgetallBuffer(k)).map(([f, v]) => [f, v.toString('base64')]).sort());
    else if (type === 'stream') out[name] = await redis.xrange(k, '-', '+');
    else out[name] = await redis.get(k);
  }
  return out;
}

/** A writer as the enroller is: a fenced write waits and is tried again. */
async function unfenced<T>(write: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await write();
    } catch (err) {
      if (!(err instanceof StoreFencedError)) throw err;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

describe('backup', () => {
  // Trimmed: a private Redis whose change stream keeps about one entry, so the writes during the first
  // pass cannot be read back and everything is dumped again under the fence.
  it.each([
    ['', false],
    [' (the change stream trimmed past the first pass: all of it dumped again under the fence)', true],
  ])('taken under a stream of writes, it is one point in time: every write acknowledged before its cut is in it, none after%s', async (_, trimmed) => {
    const own = trimmed ? await startRedisServer({ args: ['--stream-node-max-entries', '1'] }) : undefined;
    if (own) cleanups.push(() => own.stop());
    const { redis, store, prefix, dir } = await setup('bk-cut', own?.url, trimmed ? 1 : undefined);
    const rng = new Rng(1);
    for (let i = 0; i < 300; i++) await store.put(`base-${i}`, [unit(rng)]);
    let running = true;
    let fenced = 0;
    const done: { subject: string; token: string; op: 'put' | 'del' }[] = [];
    const writers = Array.from({ length: 4 }, async (_, w) => {
      const wrng = new Rng(100 + w);
      for (let i = 0; running; i++) {
        const subject = `w${w}-${i}`;
        const started = Date.now();
        const r = await unfenced(() => store.put(subject, [unit(wrng)]));
        if (Date.now() - started > 20) fenced++;
        done.push({ subject, token: r.token, op: 'put' });
        if (i % 5 === 0 && i < 300) {
          const gone = `base-${w * 75 + i / 5}`;
          done.push({ subject: gone, token: await unfenced(() => store.remove(gone)), op: 'del' });
        }
      }
    });
    await new Promise((r) => setTimeout(r, 200));
    const result = await backupStore(redis, { prefix, file: join(dir, 'cut.yocobak') });
    await new Promise((r) => setTimeout(r, 200));
    running = false;
    await Promise.all(writers);
    const cut = result.header.streamLastId;
    const before = done.filter((d) => compareStreamIds(d.token, cut) <= 0);
    const after = done.filter((d) => compareStreamIds(d.token, cut) > 0);
    expect(before.length).toBeGreaterThan(0);
    expect(after.length).toBeGreaterThan(0);
    // The first pass ran under the writes: some keys were dumped again under the fence, not all of them;
    // or, the stream trimmed, all of them.
    if (trimmed) expect(result.header.redumped).toBe(-1);
    else {
      expect(result.header.redumped).toBeGreaterThan(0);
      expect(result.header.redumped).toBeLessThan(result.header.keys);
    }
    console.log(`backup under writes: ${result.header.keys} keys, ${result.header.templates} templates, ${result.bytes} bytes in ${result.ms} ms, writes held ${result.fencedMs} ms (${result.header.redumped} keys dumped again under the fence); ${before.length} writes before the cut, ${after.length} after, ${fenced} waited on the fence`);

    // Restored into an empty prefix: exactly the state at the cut.
    const other = testPrefix('bk-cut-restored');
    cleanups.push(() => flushPrefix(redis, other));
    await restoreStore(redis, { prefix: other, file: join(dir, 'cut.yocobak') });
    const restored = new GalleryStore(redis, { prefix: other, dim: DIM });
    const removedBefore = new Set(before.filter((d) => d.op === 'del').map((d) => d.subject));
    for (const d of before) expect((await restored.templateIds(d.subject)).length, `${d.op} ${d.subject} before the cut`).toBe(d.op === 'put' && !removedBefore.has(d.subject) ? 1 : 0);
    for (const d of after) expect((await restored.templateIds(d.subject)).length, `${d.op} ${d.subject} after the cut`).toBe(d.op === 'del' ? 1 : 0);
    expect(await restored.countTemplates()).toBe(result.header.templates);
    expect((await restored.streamInfo()).lastId).toBe(cut);
  });
});

describe('restore', () => {
  it('puts a backup back, re-applies the removals made after it (from the store, or from the removal log files when Redis lost everything), and the shards reload to it', async () => {
    const { redis, store, prefix, dir, keys } = await setup('bk-restore');
    const rng = new Rng(2);
    const vectors = new Map<string, Float32Array>();
    let seq = 0;
    for (const id of ['a', 'b', 'c']) {
      vectors.set(id, unit(rng));
      await store.put(id, [vectors.get(id)!], { seq: ++seq });
    }
    await redis.set(keys.jobCounter, seq);
    const file = join(dir, 'abc.yocobak');
    await backupStore(redis, { prefix, file });
    // After the backup: b is removed (and logged outside Redis, as an enroller with REMOVAL_LOG_DIR does), d enrolled.
    const log = new RemovalLogFile(join(dir), 'enroller-0');
    const removal = await store.removeLogged('b', { seq: ++seq });
    await log.append({ id: removal.logId, subjectId: 'b', seq, atMs: Date.now() });
    await store.put('d', [unit(rng)], { seq: ++seq });
    await redis.set(keys.jobCounter, seq);

    // A follower, as a shard runs one, on the live data.
    const scorer = await createScorer(metricHead({ dim: DIM, hidden: 2 * DIM, tau: 0.5 }), { engine: 'factorized', kernelThreads: 1 });
    const blocking = new Redis(redisUrl(), { maxRetriesPerRequest: 1 });
    const follower = new SliceFollower({ store, slice: new GallerySlice(scorer), slots: ownedSlots(0, 1), blockingClient: blocking, blockMs: 100 });
    cleanups.push(async () => {
      await follower.stop();
      await follower.slice.close();
    });
    await follower.load();
    follower.follow();
    expect(follower.slice.entries().map((e) => e.subjectId).sort()).toEqual(['a', 'c', 'd']);

    // 1. Rolled back in place: b stays removed; d, enrolled after the backup, is gone (the recovery point).
    const r1 = await restoreStore(redis, { prefix, file });
    expect(r1.reapplied.map((r) => r.subjectId)).toEqual(['b']);
    expect(await store.templateIds('b')).toEqual([]);
    expect(await store.templateIds('d')).toEqual([]);
    expect((await store.templateIds('a')).length).toBe(1);
    expect(r1.jobSeq).toBe(seq);
    const deadline = Date.now() + 10_000;
    while (follower.slice.entries().map((e) => e.subjectId).sort().join() !== 'a,c') {
      if (Date.now() > deadline) throw new Error(`the follower did not reload: ${follower.slice.entries().map((e) => e.subjectId)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await follower.slice.search(vectors.get('c')!, 1))[0].subjectId).toBe('c');

    // 2. Every key of the prefix lost (all replicas gone): the files still keep b removed, and job ids never repeat.
    await flushPrefix(redis, prefix);
    const r2 = await restoreStore(redis, { prefix, file, removalLogs: [dir] });
    expect(r2.reapplied.map((r) => r.subjectId)).toEqual(['b']);
    expect(await store.templateIds('b')).toEqual([]);
    expect((await store.templateIds('c')).length).toBe(1);
    expect(r2.jobSeq).toBeGreaterThan(seq);
    // Imports skip a removed subject: its tombstone came back with the removal.
    expect((await store.put('b', [vectors.get('b')!], { import: true })).removedBefore).toBe(true);
  });

  it('a damaged or cut-short backup is refused before anything is changed', async () => {
    const { redis, store, prefix, dir } = await setup('bk-bad');
    const rng = new Rng(3);
    for (let i = 0; i < 50; i++) await store.put(`s${i}`, [unit(rng)]);
    const file = join(dir, 'good.yocobak');
    await backupStore(redis, { prefix, file });
    await store.put('later', [unit(rng)]);
    const before = await contents(redis, prefix);
    const bytes = readFileSync(file);
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)] ^= 0x40;
    writeFileSync(join(dir, 'flipped.yocobak'), flipped);
    writeFileSync(join(dir, 'short.yocobak'), bytes.subarray(0, bytes.length - 1000));
    writeFileSync(join(dir, 'other.yocobak'), Buffer.from('REDIS0011 not ours'));
    for (const name of ['flipped', 'short', 'other']) {
      await expect(restoreStore(redis, { prefix, file: join(dir, `${name}.yocobak`) })).rejects.toBeInstanceOf(BackupFileError);
      expect(await contents(redis, prefix)).toEqual(before);
    }
    // And a backup never overwrites another.
    await expect(backupStore(redis, { prefix, file })).rejects.toThrow(/exists/);
  });

  it('the fence holds writes only while its holder lives: a dead holder\'s fence expires and writes go on', async () => {
    const { redis, store, keys } = await setup('bk-fence');
    // A holder that died right after taking it: nobody renews it.
    await redis.set(keys.fence, 'dead-holder', 'PX', 1000);
    await expect(store.put('x', [unit(new Rng(4))])).rejects.toBeInstanceOf(StoreFencedError);
    await expect(store.remove('x')).rejects.toBeInstanceOf(StoreFencedError);
    expect(await store.templateIds('x')).toEqual([]);
    const started = Date.now();
    await unfenced(() => store.put('x', [unit(new Rng(4))]));
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await store.templateIds('x')).length).toBe(1);
  });
});
