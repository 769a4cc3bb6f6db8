import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@yoco/common';
import type { LocalCluster } from '@yoco/devkit';
import { connectRedis, GalleryStore, recordKeyId, slotOf, StoreKeys, TemplateSealer } from '@yoco/gallery';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanUp, DIM, enrol, identify, startCluster, unitVector } from '../support/cluster.js';
import { redisUrl, testPrefix } from '../support/redis.js';

const prefix = testPrefix('sealed');
const dir = mkdtempSync(join(tmpdir(), 'yoco-keys-'));
const keysFile = join(dir, 'template-keys.json');
let cluster: LocalCluster | undefined;
afterAll(async () => {
  await cleanUp(cluster, undefined, [prefix]);
  rmSync(dir, { recursive: true, force: true });
});

const k1 = randomBytes(32).toString('base64');
const k2 = randomBytes(32).toString('base64');
const writeKeys = (current: string, keys: Record<string, string>) => writeFileSync(keysFile, JSON.stringify({ current, keys }));
const bytesOf = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).subarray(0, 64);

describe('templates sealed at rest (AES-256-GCM)', () => {
  it('Redis holds no usable template; shards open them; a key rotation re-seals every record in the background', async () => {
    const rng = new Rng(41);
    const [plainV, sealedV] = [unitVector(rng), unitVector(rng)];
    // A record written before sealing was turned on: plain.
    const redis = connectRedis(redisUrl(), 'tool');
    const plainStore = new GalleryStore(redis, { prefix, dim: DIM });
    await plainStore.checkMeta();
    const plain = await plainStore.put('before-sealing', [plainV]);
    const keys = new StoreKeys(prefix);
    const record = (subject: string, id: string) => redis.hgetBuffer(keys.slot(slotOf(subject)), id);
    expect(recordKeyId((await record('before-sealing', plain.templateIds[0]))!)).toBe('');

    writeKeys('k1', { k1 });
    cluster = await startCluster(prefix, { shards: 1, replicas: 1, env: { TEMPLATE_KEYS_FILE: keysFile } });
    const e = await enrol(cluster.matcherClient(), 'after-sealing', [sealedV], { wait: true });
    const sealed = (await record('after-sealing', e.templateIds[0]))!;
    expect(recordKeyId(sealed)).toBe('k1');
    expect(sealed.includes(bytesOf(sealedV))).toBe(false);
    expect(Buffer.from(sealed).includes(Buffer.from('after-sealing'))).toBe(false);
    // The enroller re-sealed the plain record at its start.
    const until = async (check: () => Promise<boolean>) => {
      for (let i = 0; i < 100 && !(await check()); i++) await new Promise((r) => setTimeout(r, 100));
      expect(await check()).toBe(true);
    };
    await until(async () => recordKeyId((await record('before-sealing', plain.templateIds[0]))!) === 'k1');
    // Both are found: the shard opens what it reads.
    expect((await identify(cluster.matcherClient(), sealedV, { topK: 1, consistencyToken: e.consistencyToken })).matches[0].subjectId).toBe('after-sealing');
    expect((await identify(cluster.matcherClient(), plainV, { topK: 1 })).matches[0].subjectId).toBe('before-sealing');

    // Rotation: k2 becomes current; the enroller (restarted) re-seals everything under it.
    writeKeys('k2', { k1, k2 });
    await cluster.kill('enroller');
    cluster.startEnroller();
    await until(async () => recordKeyId((await record('after-sealing', e.templateIds[0]))!) === 'k2' && recordKeyId((await record('before-sealing', plain.templateIds[0]))!) === 'k2');
    // k1 can go: a shard started with k2 alone loads every record.
    writeKeys('k2', { k2 });
    await cluster.kill('shard-0a');
    cluster.restart('shard-0a');
    await cluster.waitReady();
    // The coordinator's stream to the restarted replica reconnects on its own: the first call may still find it down.
    const found = async (v: Float32Array) => {
      for (let i = 0; ; i++) {
        try {
          return (await identify(cluster!.matcherClient(), v, { topK: 1 })).matches[0].subjectId;
        } catch (err) {
          if (i > 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    expect(await found(sealedV)).toBe('after-sealing');
    expect(await found(plainV)).toBe('before-sealing');
    // Nowhere in the slot hashes are the vectors' bytes.
    const all = Buffer.concat(Object.values(await redis.hgetallBuffer(keys.slot(slotOf('after-sealing')))).concat(Object.values(await redis.hgetallBuffer(keys.slot(slotOf('before-sealing'))))));
    expect(all.includes(bytesOf(sealedV))).toBe(false);
    expect(all.includes(bytesOf(plainV))).toBe(false);
    // A record moved to another id does not open (the id is authenticated with it).
    const opener = new GalleryStore(redis, { prefix, dim: DIM, sealer: TemplateSealer.fromFile(keysFile) });
    expect((await opener.fetch(slotOf('after-sealing'), [e.templateIds[0]]))[0].subjectId).toBe('after-sealing');
    await redis.hset(keys.slot(slotOf('after-sealing')), 'f'.repeat(20), (await record('after-sealing', e.templateIds[0]))!);
    await expect(opener.fetch(slotOf('after-sealing'), ['f'.repeat(20)])).rejects.toThrow(/fails authentication under key 'k2'/);
    // Without the keys, a sealed record is refused as such (a shard started without TEMPLATE_KEYS_FILE says why).
    await expect(new GalleryStore(redis, { prefix, dim: DIM }).fetch(slotOf('after-sealing'), [e.templateIds[0]])).rejects.toThrow(/sealed and no TEMPLATE_KEYS_FILE/);
    redis.disconnect();
  });
});
