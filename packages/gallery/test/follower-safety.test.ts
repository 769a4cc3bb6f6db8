import { createServer, type Server } from 'node:net';
import { Batcher, Rng } from '@yoco/common';
import { startRedisServer } from '@yoco/devkit';
import { GallerySlice, GalleryStore, ownedSlots, RedisVersionError, SliceFollower, slotOf, UnknownTokenError, type FollowerEvent, type SubjectMatch } from '@yoco/gallery';
import { createScorer, metricHead } from '@yoco/head';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultProxy } from '../../../test/support/fault-proxy.js';
import { flushPrefix, redisUrl, testPrefix } from '../../../test/support/redis.js';

const DIM = 64;
// hidden = 2D: the metric head measures the distance exactly, so random unit probes (at distance ~1.4) are never
// accepted at tau 0.5, while a row scored as b2 alone (alpha * tau = 4) would be, at 0.982.
const head = metricHead({ dim: DIM, hidden: 2 * DIM, tau: 0.5 });
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

function unit(rng: Rng): Float32Array {
  const v = rng.normals(DIM);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

async function setup(name: string, url = redisUrl()) {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  const prefix = testPrefix(name);
  const store = new GalleryStore(redis, { prefix, dim: DIM });
  await store.checkMeta();
  cleanups.push(async () => {
    await flushPrefix(redis, prefix).catch(() => undefined);
    redis.disconnect();
  });
  return { redis, prefix, store };
}

async function follower(store: GalleryStore, options: Partial<ConstructorParameters<typeof SliceFollower>[0]> = {}, url = redisUrl()) {
  const scorer = await createScorer(head, { engine: 'factorized', kernelThreads: 1 });
  const events: { event: FollowerEvent; detail: Record<string, unknown> }[] = [];
  const blockingClient = new Redis(url, { maxRetriesPerRequest: 1 });
  blockingClient.on('error', () => undefined);
  const f = new SliceFollower({
    store,
    slice: new GallerySlice(scorer),
    slots: ownedSlots(0, 1),
    blockingClient,
    blockMs: 100,
    onEvent: (event, detail) => events.push({ event, detail }),
    ...options,
  });
  cleanups.push(async () => {
    await f.stop();
    await f.slice.close();
  });
  return { f, events };
}

async function putMany(store: GalleryStore, ids: string[], rng: Rng): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const id of ids) out.set(id, unit(rng));
  const entries = [...out];
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < entries.length) {
        const [id, v] = entries[next++];
        await store.put(id, [v]);
      }
    }),
  );
  return out;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('reloads are safe', () => {
  it('searches running while 20000 rows reload never see a half-built slice: no random probe is accepted', async () => {
    const { store } = await setup('reload');
    const rng = new Rng(1);
    const gallery = await putMany(store, Array.from({ length: 20_000 }, (_, i) => `r${i}`), rng);
    const { f } = await follower(store);
    await f.load();
    // As the shard does: concurrent searches batched into one pass over the current slice.
    const batcher = new Batcher<Float32Array, SubjectMatch[]>((qs) => f.use((slice) => slice.searchMany(qs, 10)), { maxBatch: 16, maxDelayMs: 0 });
    let stop = false;
    let searched = 0;
    const accepted: SubjectMatch[] = [];
    const short: number[] = [];
    const searchers = Array.from({ length: 4 }, async (_, w) => {
      const prng = new Rng(100 + w);
      while (!stop) {
        const matches = await batcher.submit(unit(prng));
        searched++;
        if (matches.length < 10) short.push(matches.length);
        accepted.push(...matches.filter((m) => m.score >= 0.5));
      }
    });
    for (let i = 0; i < 3; i++) await f.load();
    stop = true;
    await Promise.all(searchers);
    expect(searched).toBeGreaterThan(50);
    expect(accepted, `${accepted.length} of ${searched} random probes accepted`).toEqual([]);
    expect(short).toEqual([]);
    // A reload never doubles rows: the slice holds each template once.
    expect(f.slice.rows).toBe(20_000);
    expect(f.slice.templates).toBe(20_000);
    // And exact probes still find their subjects.
    const [id, v] = [...gallery][1234];
    expect((await f.slice.search(v, 1))[0].subjectId).toBe(id);
  });
});

describe('lost changes are found without waiting for a write', () => {
  it('a follower whose unread changes were trimmed away (the stream now empty) reloads on its own', async () => {
    const { redis, store, prefix } = await setup('trimmed');
    const rng = new Rng(2);
    await putMany(store, ['before'], rng);
    const { f, events } = await follower(store);
    await f.load();
    // It has not read these (frozen, say) when the stream is trimmed to nothing.
    const missed = await putMany(store, Array.from({ length: 200 }, (_, i) => `m${i}`), rng);
    await redis.xtrim(`${prefix}changes`, 'MAXLEN', 0);
    f.follow();
    // No write from here on: the follower must find out by itself.
    await until(() => f.slice.templates === 201 && f.state === 'serving', 10_000, 'the reload');
    expect(events.map((e) => e.event)).toContain('reload');
    const [id, v] = [...missed][77];
    expect((await f.slice.search(v, 1))[0].subjectId).toBe(id);
  });

  it('a follower that had read every change does not reload when the stream is trimmed under it', async () => {
    const { redis, store, prefix } = await setup('trimmed-read');
    const rng = new Rng(8);
    const { f, events } = await follower(store);
    await f.load();
    f.follow();
    const first = await store.put('x1', [unit(rng)]);
    await f.waitFor(first.token, 5000);
    // Trimmed to nothing, then written again: nothing it had not read was lost, so nothing to reload.
    await redis.xtrim(`${prefix}changes`, 'MAXLEN', 0);
    const next = await store.put('x2', [unit(rng)]);
    await f.waitFor(next.token, 5000);
    await new Promise((r) => setTimeout(r, 300));
    expect(events.filter((e) => e.event === 'reload')).toEqual([]);
    expect(f.slice.templates).toBe(2);
  });

  it('a stream that went backwards (a Redis restored from an older copy) makes the follower reload to what Redis holds', async () => {
    const { redis, store, prefix } = await setup('backwards');
    const rng = new Rng(3);
    await putMany(store, ['a', 'b', 'c'], rng);
    const { f } = await follower(store);
    await f.load();
    f.follow();
    // Redis loses the stream and one subject: the follower's watermark is now ahead of the stream.
    await redis.del(`${prefix}changes`);
    await redis.hdel(store.slotKey(slotOf('b')), ...(await store.templateIds('b')));
    await until(() => f.slice.templates === 2, 10_000, 'the reload');
    expect(f.slice.entries().map((e) => e.subjectId).sort()).toEqual(['a', 'c']);
  });

  it('Redis older than 7.0 is refused with a clear message', async () => {
    // A fake server that answers like Redis 6.2 (no entries-added in XINFO STREAM).
    const reply = (cmd: string): string => {
      if (cmd === 'INFO') {
        const body = '# Server\r\nredis_version:6.2.14\r\nloading:0\r\n';
        return `$${body.length}\r\n${body}\r\n`;
      }
      if (cmd === 'EXISTS') return ':1\r\n';
      if (cmd === 'XINFO') return '*4\r\n$6\r\nlength\r\n:0\r\n$17\r\nlast-generated-id\r\n$3\r\n0-0\r\n';
      return '+OK\r\n';
    };
    const server: Server = createServer((sock) => {
      let pending = '';
      let queued: string[] | undefined;
      sock.on('data', (d) => {
        pending += d.toString('latin1');
        // One reply per command, several of which may come in one chunk: *N, then N bulk strings.
        for (;;) {
          const m = /^\*(\d+)\r\n/.exec(pending);
          if (!m) return;
          let at = m[0].length;
          const args: string[] = [];
          for (let i = 0; i < Number(m[1]); i++) {
            const len = /^\$(\d+)\r\n/.exec(pending.slice(at));
            if (!len || pending.length < at + len[0].length + Number(len[1]) + 2) return;
            at += len[0].length;
            args.push(pending.slice(at, at + Number(len[1])));
            at += Number(len[1]) + 2;
          }
          pending = pending.slice(at);
          const cmd = args[0].toUpperCase();
          if (cmd === 'MULTI') {
            queued = [];
            sock.write('+OK\r\n');
          } else if (cmd === 'EXEC') {
            sock.write(`*${queued!.length}\r\n${queued!.map(reply).join('')}`);
            queued = undefined;
          } else if (queued) {
            queued.push(cmd);
            sock.write('+QUEUED\r\n');
          } else sock.write(reply(cmd));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    cleanups.push(async () => redis.disconnect());
    const store = new GalleryStore(redis, { prefix: 'fake:', dim: DIM });
    const err = await store.checkServer().catch((e: Error) => e);
    expect(err).toBeInstanceOf(RedisVersionError);
    expect((err as Error).message).toMatch(/Redis 6\.2\.14 is older than 7\.0/);
    await expect(store.streamInfo()).rejects.toBeInstanceOf(RedisVersionError);
    // The real one passes.
    const { store: real } = await setup('version');
    expect(Number((await real.checkServer()).split('.')[0])).toBeGreaterThanOrEqual(7);
  });
});

describe('a failover that lost the tail the follower had read', () => {
  it('the follower notices its last change is gone from the new primary, though the new primary has already been written past it, and reloads to what the new primary holds', async () => {
    // A primary and a replica; the replica is cut off (as a partition would leave it), then promoted.
    const primary = await startRedisServer();
    cleanups.push(() => primary.stop());
    const replica = await startRedisServer({ args: ['--replicaof', '127.0.0.1', String(primary.port)] });
    cleanups.push(() => replica.stop());
    const direct = new Redis(replica.url, { maxRetriesPerRequest: 1 });
    cleanups.push(async () => direct.disconnect());
    // WAIT counts only a replica whose link is up: its first sync must be done before the writes it is to hold.
    for (let i = 0; i < 200 && !(await direct.info('replication')).includes('master_link_status:up'); i++) await new Promise((r) => setTimeout(r, 50));
    const proxy = await FaultProxy.start(primary.port);
    cleanups.push(() => proxy.close());
    const { redis, store, prefix } = await setup('lost-tail', proxy.url);
    const rng = new Rng(11);
    await putMany(store, ['a', 'b', 'c'], rng);
    expect(await redis.wait(1, 5000)).toBe(1);
    await direct.replicaof('NO', 'ONE');
    const { f, events } = await follower(store, {}, proxy.url);
    await f.load();
    f.follow();
    // The old primary's clock runs 1 s ahead of the new one's (hosts drift), so its ids are later.
    const ahead = Date.now() + 1000;
    await redis.xsetid(`${prefix}changes`, `${ahead}-0`);
    const tail = await putMany(store, ['t1', 't2', 't3'], rng);
    const last = await store.put('t4', [unit(rng)]);
    await f.waitFor(last.token, 5000);
    expect(f.slice.templates).toBe(7);
    // The failover: the follower loses its connection and finds the promoted replica when it comes back,
    // by which time that one has taken writes both before and after the follower's watermark.
    proxy.point(undefined);
    const promoted = new GalleryStore(direct, { prefix, dim: DIM });
    const early = await putMany(promoted, ['n1', 'n2', 'n3', 'n4'], rng);
    while (Date.now() <= ahead + 50) await new Promise((r) => setTimeout(r, 50));
    const late = await putMany(promoted, ['n5', 'n6'], rng);
    proxy.point(replica.port);
    const held = ['a', 'b', 'c', ...early.keys(), ...late.keys()].sort();
    await until(() => f.state === 'serving' && f.slice.entries().map((e) => e.subjectId).sort().join() === held.join(), 15_000, 'the slice to equal the new primary');
    expect(events.find((e) => e.event === 'reload')?.detail.reason).toMatch(/not in the stream.*lost its tail/);
    // Nothing of the lost tail is served; what the new primary took before the old watermark is.
    const [tid, tv] = [...tail][0];
    expect((await f.slice.search(tv, 1))[0].subjectId).not.toBe(tid);
    const [eid, ev] = [...early][2];
    expect((await f.slice.search(ev, 1))[0].subjectId).toBe(eid);
  });

  it('a consistency token this store never had is refused at the next read of the stream, not at the deadline', async () => {
    const { store } = await setup('unknown-token');
    const { f } = await follower(store);
    await f.load();
    f.follow();
    const token = `${Date.now() + 3_600_000}-0`;
    const started = Date.now();
    const err = await f.waitFor(token, 20_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownTokenError);
    expect((err as Error).message).toMatch(/past the newest change in the store/);
    expect(Date.now() - started).toBeLessThan(5000);
    // A token for a write made just now still waits for it and resolves.
    const fresh = await store.put('u1', [unit(new Rng(12))]);
    await f.waitFor(fresh.token, 5000);
  });
});

describe('nothing wedges', () => {
  it('a change that cannot be applied is counted, retried, then replaced by a reload; replication goes on', async () => {
    const { redis, store, prefix } = await setup('badchange');
    const rng = new Rng(4);
    await putMany(store, ['ok-1'], rng);
    const { f, events } = await follower(store, { maxChangeAttempts: 3 });
    await f.load();
    f.follow();
    // A record no shard can use, and a change naming it (a writer with a bug, a disk error).
    const slot = slotOf('broken');
    await redis.hset(store.slotKey(slot), 'deadbeefdeadbeefdead', Buffer.from([1, 6, 0, 98, 114, 111, 107, 101, 110, 9, 9, 9]));
    await redis.xadd(`${prefix}changes`, '*', 'op', 'put', 'subject', 'broken', 'slot', String(slot), 'add', 'deadbeefdeadbeefdead', 'del', '');
    const after = await store.put('ok-2', [unit(rng)]);
    await f.waitFor(after.token, 15_000);
    const names = events.map((e) => e.event);
    expect(names.filter((e) => e === 'change-failed')).toHaveLength(3);
    expect(names).toContain('reload');
    expect(names).toContain('bad-template');
    expect(f.state).toBe('serving');
    expect(f.slice.entries().map((e) => e.subjectId).sort()).toEqual(['ok-1', 'ok-2']);
    const failed = events.find((e) => e.event === 'change-failed')!;
    expect(failed.detail.error).toMatch(/template deadbeefdeadbeefdead/);
  });
});

describe('memory follows live templates', () => {
  it('replaced rows are compacted away in the background; searches during it stay exact', async () => {
    const { store } = await setup('compact');
    const rng = new Rng(5);
    const ids = Array.from({ length: 3000 }, (_, i) => `c${i}`);
    await putMany(store, ids, rng);
    const { f, events } = await follower(store, { compactMinDead: 500, compactFraction: 0.25 });
    await f.load();
    f.follow();
    const bytes = () => (f.slice.scorer as unknown as { memoryBytes: number }).memoryBytes;
    expect(f.slice.rows).toBe(3000);
    const latest = new Map<string, Float32Array>();
    let stop = false;
    const wrong: string[] = [];
    const checker = (async () => {
      const crng = new Rng(9);
      while (!stop) {
        const matches = await f.use((s) => s.search(unit(crng), 5));
        for (const m of matches) if (m.score >= 0.5) wrong.push(m.subjectId);
        await new Promise((r) => setImmediate(r));
      }
    })();
    // Every subject replaced twice: 6000 dead rows written in all.
    let token = '';
    for (let round = 0; round < 2; round++) {
      for (const id of ids) {
        const v = unit(rng);
        latest.set(id, v);
        token = (await store.put(id, [v], { replace: true })).token;
      }
    }
    await f.waitFor(token, 20_000);
    stop = true;
    await checker;
    // Dead rows never pass a quarter of the rows for long: 6000 written, compacted at ~1000 each time.
    expect(events.filter((e) => e.event === 'compaction').length).toBeGreaterThanOrEqual(4);
    expect(f.slice.templates).toBe(3000);
    expect(f.slice.dead).toBeLessThanOrEqual(1001);
    expect(f.slice.rows).toBe(3000 + f.slice.dead);
    expect(wrong).toEqual([]);
    for (const id of ids.slice(0, 50)) expect((await f.slice.search(latest.get(id)!, 1))[0].subjectId).toBe(id);
    expect(bytes()).toBeGreaterThan(0);
  });
});

describe('freshness', () => {
  it('staleness stays near one block period while Redis answers, and grows while it does not; the slice keeps serving', async () => {
    const own = await startRedisServer();
    cleanups.push(() => own.stop());
    const { store } = await setup('stale', own.url);
    await putMany(store, ['s1', 's2'], new Rng(6));
    const { f } = await follower(store, {}, own.url);
    await f.load();
    f.follow();
    await new Promise((r) => setTimeout(r, 500));
    expect(f.stalenessMs).toBeLessThan(1000);
    await own.stop();
    await new Promise((r) => setTimeout(r, 2500));
    expect(f.stalenessMs).toBeGreaterThan(2000);
    expect(f.state).toBe('serving');
    expect(f.lastError).toBeTruthy();
    expect((await f.slice.search(unit(new Rng(7)), 2)).length).toBe(2);
  });
});
