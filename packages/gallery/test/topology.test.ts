import { Rng } from '@yoco/common';
import { GallerySlice, GalleryStore, ownedSlots, SliceFollower, slotOf, StoreKeys, TopologyChangeError, TopologyStore } from '@yoco/gallery';
import { createScorer, metricHead } from '@yoco/head';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { flushPrefix, redisUrl, testPrefix } from '../../../test/support/redis.js';

const DIM = 32;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

function open(name: string) {
  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: 1 });
  const prefix = testPrefix(name);
  cleanups.push(async () => {
    await flushPrefix(redis, prefix);
    redis.disconnect();
  });
  return { redis, prefix, topology: new TopologyStore(redis, prefix), store: new GalleryStore(redis, { prefix, dim: DIM }) };
}

function unit(rng: Rng): Float32Array {
  const v = rng.normals(DIM);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

describe('TopologyStore', () => {
  it('seeds once, begins one change at a time at the stream position, commits by epoch, aborts without reusing the number', async () => {
    const { topology, store } = open('topo');
    expect(await topology.read()).toBeUndefined();
    await expect(topology.begin(3)).rejects.toThrow(/no topology on record/);
    expect(await topology.seed(2)).toMatchObject({ epoch: 1, k: 2 });
    // A second seed (another shard's SHARD_COUNT) changes nothing.
    expect(await topology.seed(5)).toMatchObject({ epoch: 1, k: 2 });
    await store.checkMeta();
    const { token: changeToken } = await store.put('alice', [unit(new Rng(1))]);
    const begun = await topology.begin(3);
    expect(begun.next).toMatchObject({ epoch: 2, k: 3, fromId: changeToken });
    const refused = await topology.begin(4).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TopologyChangeError);
    expect((refused as TopologyChangeError).code).toBe('TOPOLOGY_IN_PROGRESS');
    // A commit naming another epoch (a coordinator that is behind) is a no-op.
    expect(await topology.commit(7)).toMatchObject({ epoch: 1, next: { epoch: 2 } });
    const aborted = await topology.abort();
    expect(aborted).toMatchObject({ epoch: 1, k: 2, lastEpoch: 2 });
    expect(aborted.next).toBeUndefined();
    await expect(topology.abort()).rejects.toThrow(/no change is in progress/);
    await expect(topology.begin(2)).rejects.toThrow(/already has k=2/);
    await expect(topology.begin(0)).rejects.toThrow(/not a whole number from 1 to 4096/);
    // The next change gets a fresh epoch, and its commit makes it current once.
    expect((await topology.begin(3)).next?.epoch).toBe(3);
    const done = await topology.commit(3);
    expect(done).toMatchObject({ epoch: 3, k: 3, previous: { epoch: 1, k: 2 } });
    expect(done.switchedAt).toBeGreaterThan(0);
    expect(await topology.commit(3)).toEqual(done);
  });

  it('garbage in the topology key is an error, not a topology', async () => {
    const { redis, prefix, topology } = open('topo-bad');
    await redis.set(new StoreKeys(prefix).topology, '{"k":"two"}');
    await expect(topology.read()).rejects.toThrow(/not one/);
  });
});

describe('a follower whose slots change while it follows', () => {
  it('loads gained slots at its position (later writes to them apply), drops lost ones, and a slot mask limits a search to one epoch', async () => {
    const { redis, store } = open('gain');
    await store.checkMeta();
    const rng = new Rng(5);
    const vectors = new Map<string, Float32Array>();
    for (let i = 0; i < 600; i++) {
      const v = unit(rng);
      vectors.set(`s-${i}`, v);
      await store.put(`s-${i}`, [v]);
    }
    const head = metricHead({ dim: DIM, hidden: 2 * DIM });
    const mine = ownedSlots(0, 2);
    const f = new SliceFollower({ store, slice: new GallerySlice(await createScorer(head, { engine: 'factorized', kernelThreads: 1 })), slots: mine, blockingClient: redis.duplicate(), blockMs: 50 });
    cleanups.push(() => f.stop());
    await f.load();
    f.follow();
    const inSlots = (slots: number[]) => [...vectors.keys()].filter((id) => slots.includes(slotOf(id))).sort();
    const held = () => [...new Set(f.slice.entries().map((t) => t.subjectId))].sort();
    expect(held()).toEqual(inSlots(mine));

    // Gain every slot (k=1 for index 0): loaded a few per turn; a write to a gained slot during it lands too.
    const all = ownedSlots(0, 1);
    f.setSlots(all);
    const late = [...vectors.keys()].find((id) => !mine.includes(slotOf(id)))!;
    await store.remove(late);
    vectors.delete(late);
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
    };
    await until(() => f.holdsAll(all) && held().length === vectors.size);
    expect(f.holdsAll(all)).toBe(true);
    expect(held()).toEqual([...vectors.keys()].sort());

    // A search for the old epoch answers from its slots only, though the slice holds more.
    const mask = new Uint8Array(1024);
    for (const s of mine) mask[s] = 1;
    const other = [...vectors.keys()].find((id) => !mine.includes(slotOf(id)))!;
    const [masked] = await f.slice.searchMany([vectors.get(other)!], 5, [mask]);
    expect(masked.every((m) => mine.includes(slotOf(m.subjectId)))).toBe(true);
    expect((await f.slice.search(vectors.get(other)!, 1))[0].subjectId).toBe(other);
    expect(f.slice.templatesIn(mine)).toBe(inSlots(mine).length);

    // Back to the old slots: the others are dropped and compacted away.
    f.setSlots(mine);
    await until(() => held().length === inSlots(mine).length);
    expect(held()).toEqual(inSlots(mine));
    expect(f.slice.dead).toBe(0);
  });
});
