import { Rng } from '@yoco/common';
import { GallerySlice, GalleryStore, ownedSlots, SliceFollower, slotOf } from '@yoco/gallery';
import { createScorer, metricHead } from '@yoco/head';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, flushPrefix, keysUnder, testPrefix } from '../../../test/support/redis.js';

const DIM = 16;
const head = metricHead({ dim: DIM, hidden: 16 });
let redis: Redis;
let prefix: string;
let store: GalleryStore;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  redis = connect();
  prefix = testPrefix('gallery');
  store = new GalleryStore(redis, { prefix, dim: DIM });
  await store.checkMeta();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await flushPrefix(redis, prefix);
  redis.disconnect();
});

const vec = (rng: Rng) => rng.normals(DIM, 0.25);

async function slice(slots: number[], blockMs = 200) {
  const scorer = await createScorer(head, { engine: 'factorized', kernelThreads: 1 });
  const s = new GallerySlice(scorer);
  const follower = new SliceFollower({ store, slice: s, slots, blockingClient: connect(), blockMs });
  cleanups.push(() => scorer.close(), () => follower.stop());
  return { slice: s, follower };
}

describe('GalleryStore', () => {
  it('put writes templates and one change atomically; a retry adds nothing', async () => {
    const rng = new Rng(1);
    const v = [vec(rng), vec(rng)];
    const first = await store.put('alice', v);
    expect(first.templateIds).toHaveLength(2);
    const again = await store.put('alice', v);
    expect(again.templateIds).toEqual(first.templateIds);
    expect(await store.templateIds('alice')).toEqual([...first.templateIds].sort());
    expect(await redis.hlen(store.slotKey(slotOf('alice')))).toBe(2);
    const changes = await store.readChanges('0-0');
    expect(changes.map((c) => [c.op, c.subjectId, c.slot, c.added.length])).toEqual([
      ['put', 'alice', slotOf('alice'), 2],
      ['put', 'alice', slotOf('alice'), 2],
    ]);
    expect(changes[0].id).toBe(first.token);
    const [t] = await store.fetch(slotOf('alice'), [first.templateIds[0]]);
    expect(t.subjectId).toBe('alice');
    expect(Array.from(t.vector)).toEqual(Array.from(v[0]));
  });

  it('replace swaps every template; remove leaves no key and no vector behind', async () => {
    const rng = new Rng(2);
    const old = await store.put('bob', [vec(rng), vec(rng)]);
    const fresh = await store.put('bob', [vec(rng)], { replace: true });
    expect(fresh.removed.sort()).toEqual([...old.templateIds].sort());
    expect(await store.templateIds('bob')).toEqual(fresh.templateIds);
    const token = await store.remove('bob');
    expect(await store.templateIds('bob')).toEqual([]);
    expect(await redis.hlen(store.slotKey(slotOf('bob')))).toBe(0);
    const keys = await keysUnder(redis, prefix);
    // What stays: the stream, the meta, the tombstone that keeps imports from bringing bob back (a sequence
    // number only), and the removal log's entry (subject, slot, sequence: what a restore re-applies).
    expect(keys).toEqual([`${prefix}changes`, `${prefix}meta`, `${prefix}removals`, store.tombstoneKey('bob')]);
    expect(await redis.get(store.tombstoneKey('bob'))).toMatch(/^\d+$/);
    const logged = await redis.xrange(`${prefix}removals`, '-', '+');
    expect(logged.map(([, f]) => f)).toEqual([['subject', 'bob', 'slot', String(slotOf('bob')), 'seq', '0']]);
    // The stream carries ids only: no vector bytes of bob remain anywhere.
    const entries = await redis.xrange(`${prefix}changes`, '-', '+');
    expect(entries.at(-1)![0]).toBe(token);
    for (const [, fields] of entries) expect(fields.join(' ')).not.toMatch(/[^\x20-\x7e]/);
    await expect(store.remove('bob')).rejects.toMatchObject({ code: 'SUBJECT_NOT_FOUND' });
  });

  it('ordered writes end as if applied in sequence order, whatever order they arrive in', async () => {
    const rng = new Rng(5);
    const [a, b, c] = [vec(rng), vec(rng), vec(rng)];
    // Enqueued: 1 add a, 2 remove, 3 add b, 4 replace with c. Arriving: 3, 1, 4, 2 (retries reorder).
    const three = await store.put('zed', [b], { seq: 3 });
    expect(three.stale).toBe(false);
    const one = await store.put('zed', [a], { seq: 1 });
    expect(one.stale).toBe(false); // adds commute: nothing newer than 1 replaced or removed zed yet
    const four = await store.put('zed', [c], { seq: 4, replace: true });
    expect(four.removed.sort()).toEqual([one.templateIds[0], three.templateIds[0]].sort());
    expect(await store.remove('zed', { seq: 2 })).toBe(''); // stale: the replace (4) is newer
    expect(await store.templateIds('zed')).toEqual(four.templateIds);
    // A retry of an already-applied write is a no-op too.
    expect((await store.put('zed', [c], { seq: 4, replace: true })).stale).toBe(true);
    // Removal at 5 clears it; a late add (seq 3 again) cannot resurrect it.
    expect(await store.remove('zed', { seq: 5 })).not.toBe('');
    expect((await store.put('zed', [b], { seq: 3 })).stale).toBe(true);
    expect(await store.templateIds('zed')).toEqual([]);
    expect(await redis.ttl(store.barrierKey('zed'))).toBeGreaterThan(0);
  });

  it('refuses bad ids and vectors before touching Redis', async () => {
    await expect(store.put('bad id', [new Float32Array(DIM)])).rejects.toMatchObject({ code: 'SUBJECT_ID' });
    await expect(store.put('ok', [new Float32Array(DIM - 1)])).rejects.toMatchObject({ code: 'VECTOR_LENGTH' });
    const nan = new Float32Array(DIM);
    nan[3] = NaN;
    await expect(store.put('ok', [new Float32Array(DIM), nan])).rejects.toMatchObject({ code: 'VECTOR_NOT_FINITE' });
    expect(await keysUnder(redis, prefix)).toEqual([`${prefix}meta`]);
  });

  it('a Redis holding another width is refused', async () => {
    const other = new GalleryStore(redis, { prefix, dim: DIM + 1 });
    await expect(other.checkMeta()).rejects.toMatchObject({ code: 'STORE_MISMATCH' });
  });
});

describe('SliceFollower', () => {
  it('loads owned slots, follows puts, replaces and removals, and honours tokens', async () => {
    const rng = new Rng(3);
    const slots = ownedSlots(0, 2);
    const mine = (id: string) => slots.includes(slotOf(id));
    const ids = Array.from({ length: 60 }, (_, i) => `s${i}`);
    for (const id of ids.slice(0, 30)) await store.put(id, [vec(rng)]);
    const { slice: sl, follower } = await slice(slots);
    await follower.load();
    follower.follow();
    expect(sl.subjects).toBe(ids.slice(0, 30).filter(mine).length);

    for (const id of ids.slice(30)) await store.put(id, [vec(rng), vec(rng)]);
    const target = ids.find((id, i) => i >= 30 && mine(id))!;
    const q = (await store.fetch(slotOf(target), (await store.templateIds(target)).slice(0, 1)))[0].vector;
    const last = await store.put('late', [vec(rng)]);
    await follower.waitFor(last.token, 5000);
    expect(sl.subjects).toBe(ids.filter(mine).length + (mine('late') ? 1 : 0));
    expect((await sl.search(q, 1))[0].subjectId).toBe(target);

    const fresh = vec(rng);
    const replaced = await store.put(target, [fresh], { replace: true });
    await follower.waitFor(replaced.token, 5000);
    expect(sl.subjectTemplates(target)).toEqual(replaced.templateIds);
    expect((await sl.search(fresh, 1))[0]).toMatchObject({ subjectId: target, templateId: replaced.templateIds[0] });

    const removed = await store.remove(target);
    await follower.waitFor(removed, 5000);
    expect(sl.subjectTemplates(target)).toEqual([]);
    expect((await sl.search(fresh, 100)).map((m) => m.subjectId)).not.toContain(target);

    // The slice holds exactly what Redis holds for its slots.
    const inRedis: string[] = [];
    for await (const batch of store.loadSlots(slots)) inRedis.push(...batch.map((t) => `${t.subjectId}/${t.templateId}`));
    expect(sl.entries().map((e) => `${e.subjectId}/${e.templateId}`).sort()).toEqual(inRedis.sort());
  });

  it('a token not reached in time fails with DEADLINE_EXCEEDED; a malformed one with TOKEN', async () => {
    const { follower } = await slice(ownedSlots(0, 1));
    await follower.load();
    follower.follow();
    await expect(follower.waitFor('99999999999999-0', 100)).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    await expect(follower.waitFor('nope', 100)).rejects.toMatchObject({ code: 'TOKEN' });
  });

  it('a follower behind the trimmed start of the stream reloads', async () => {
    const rng = new Rng(4);
    const small = new GalleryStore(redis, { prefix, dim: DIM, streamMaxLen: 1 });
    await small.put('keep', [vec(rng)]);
    const { slice: sl, follower } = await slice(ownedSlots(0, 1), 100);
    await follower.load();
    // Trim precisely, then write behind the follower's back without it reading.
    await follower.stop();
    for (let i = 0; i < 5; i++) await small.put(`n${i}`, [vec(rng)]);
    await redis.xtrim(`${prefix}changes`, 'MAXLEN', 1);
    const { slice: sl2, follower: f2 } = await slice(ownedSlots(0, 1), 100);
    f2.watermark = follower.watermark; // resume from where the first stopped
    f2.follow();
    const last = await small.put('last', [vec(rng)]);
    await f2.waitFor(last.token, 5000);
    expect(sl2.subjects).toBe(7);
    expect(sl.subjects).toBe(1);
  });
});
