import { type LocalCluster } from '@yoco/devkit';
import { rawUnary } from '../support/raw-unary.js';
import { Rng } from '@yoco/common';

import { isServiceError, loadProtos, makeClient, MultiplexedChannel, Status, statusName, unary } from '@yoco/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIM, identify, startCluster, unitVector, writeGallery, type Gallery } from '../support/cluster.js';
import { connect, flushPrefix, testPrefix } from '../support/redis.js';

const prefix = testPrefix('bad');
let cluster: LocalCluster;
let gallery: Gallery;

beforeAll(async () => {
  gallery = await writeGallery(prefix, 300, 3);
  cluster = await startCluster(prefix, { shards: 2, replicas: 1, coordinatorEnv: { MIN_THRESHOLD: '0.2', VECTOR_NORM_RANGE: '0.5,2' } });
});
afterAll(async () => {
  await cluster?.stop();
  const redis = connect();
  await flushPrefix(redis, prefix);
  redis.disconnect();
});

async function code(p: Promise<unknown>): Promise<[string, string]> {
  try {
    await p;
    return ['OK', ''];
  } catch (err) {
    if (!isServiceError(err)) throw err;
    return [statusName(err.code), err.details];
  }
}

const call = (method: string, req: object) => rawUnary(cluster.matcherClient(), method, req, { deadline: Date.now() + 5000 });

describe('bad input gets its documented status and the cluster keeps serving', () => {
  const rng = new Rng(1);
  const good = () => unitVector(rng);

  it('Identify: vector length, NaN, infinities, top_k, threshold, probe, token', async () => {
    expect(await code(identify(cluster.matcherClient(), new Float32Array(DIM - 1)))).toEqual(['INVALID_ARGUMENT', `probe vector has ${DIM - 1} values, expected ${DIM}`]);
    expect((await code(identify(cluster.matcherClient(), new Float32Array(DIM + 7))))[0]).toBe('INVALID_ARGUMENT');
    const nan = good();
    nan[3] = NaN;
    expect(await code(identify(cluster.matcherClient(), nan))).toEqual(['INVALID_ARGUMENT', 'probe vector holds a non-finite value (NaN) at position 3']);
    for (const bad of [Infinity, -Infinity]) {
      const v = good();
      v[0] = bad;
      expect((await code(identify(cluster.matcherClient(), v)))[1]).toMatch(/non-finite value \(-?Infinity\) at position 0/);
    }
    expect(await code(identify(cluster.matcherClient(), good(), { topK: 1001 }))).toEqual(['INVALID_ARGUMENT', 'top_k 1001 is above 1000']);
    expect((await code(identify(cluster.matcherClient(), good(), { threshold: 1.5 })))[0]).toBe('INVALID_ARGUMENT');
    expect((await code(identify(cluster.matcherClient(), good(), { consistencyToken: 'yesterday' })))[0]).toBe('INVALID_ARGUMENT');
    expect((await code(call('Identify', { topK: 3 })))).toEqual(['INVALID_ARGUMENT', 'probe is empty: set an image or a vector']);
    // The raw float32 form of a vector is checked the same way.
    const raw = (v: Float32Array) => call('Identify', { probe: { vector: { f32le: Buffer.from(v.buffer) } } });
    expect((await code(raw(new Float32Array(DIM + 1))))[1]).toBe(`probe vector has ${DIM + 1} values, expected ${DIM}`);
    expect((await code(call('Identify', { probe: { vector: { f32le: Buffer.alloc(7) } } })))[1]).toMatch(/not whole float32 values/);
    const nanRaw = good();
    nanRaw[9] = NaN;
    expect((await code(raw(nanRaw)))[1]).toMatch(/NaN\) at position 9/);
    const viaBytes = (await raw(gallery.subjects.get('p3-5')![0])) as { matches: { subjectId: string }[] };
    expect(viaBytes.matches[0].subjectId).toBe('p3-5');
    // Valid edge cases: top_k 0 means 10, 1000 is allowed.
    expect((await identify(cluster.matcherClient(), good(), { topK: 0 })).matches).toHaveLength(10);
    expect((await identify(cluster.matcherClient(), good(), { topK: 1000 })).matches).toHaveLength(300);
  });

  it('Verify: empty, oversized or malformed subject id; unknown subject; a match', async () => {
    const v = good();
    const verify = (subjectId: string, vector = v, extra = {}) => call('Verify', { subjectId, probe: { vector: { values: Array.from(vector) } }, ...extra });
    expect((await code(verify('')))[0]).toBe('INVALID_ARGUMENT');
    expect((await code(verify('x'.repeat(129))))[1]).toMatch(/subject id .* is invalid/);
    expect((await code(verify('spaces are bad')))[0]).toBe('INVALID_ARGUMENT');
    expect(await code(verify('nobody-here'))).toEqual(['NOT_FOUND', "subject 'nobody-here' is not enrolled"]);
    expect((await code(verify('p3-0', new Float32Array(3))))[0]).toBe('INVALID_ARGUMENT');
    const [id, vectors] = [...gallery.subjects.entries()][7];
    const res = (await verify(id, vectors[0])) as { match: boolean; score: number };
    expect(res.match).toBe(true);
    expect(res.score).toBeGreaterThan(0.99);
    const other = (await verify(id, good(), { threshold: 0.999 })) as { match: boolean };
    expect(other.match).toBe(false);
  });

  it('GetSubject; Enrol by image before the embedder exists', async () => {
    const [id, vectors] = [...gallery.subjects.entries()][11];
    const s = (await call('GetSubject', { subjectId: id })) as { templateIds: string[]; slot: number; shard: number };
    expect(s.templateIds).toHaveLength(vectors.length);
    expect(s.shard).toBeLessThan(2);
    expect((await code(call('GetSubject', { subjectId: 'nobody-here' })))[0]).toBe('NOT_FOUND');
    expect((await code(call('Enrol', { subjectId: 'a', probes: [{ image: Buffer.from('not yet') }] })))[0]).toBe('UNIMPLEMENTED');
    expect((await code(call('Identify', { probe: { image: Buffer.from('not yet') } })))[0]).toBe('UNIMPLEMENTED');
    expect((await code(call('Enrol', { subjectId: 'a', probes: [] })))[0]).toBe('INVALID_ARGUMENT');
    // Remove queues without asking Redis first (an Enrol may still be queued); waiting tells.
    expect((await code(call('Remove', { subjectId: 'nobody-here', wait: true })))[0]).toBe('NOT_FOUND');
  });

  it('bad values: huge entries, norms outside the configured range, thresholds under the floor, long tokens, timer overflows, oversized messages', async () => {
    const big = good();
    big[5] = 2e6;
    expect(await code(identify(cluster.matcherClient(), big))).toEqual(['INVALID_ARGUMENT', 'probe vector holds 2000000 at position 5: values must lie within ±1000000']);
    const enrolBig = await code(call('Enrol', { subjectId: 'huge-1', probes: [{ vector: { values: Array.from(big) } }] }));
    expect(enrolBig[0]).toBe('INVALID_ARGUMENT');
    expect((await code(call('GetSubject', { subjectId: 'huge-1' })))[0]).toBe('NOT_FOUND');
    // VECTOR_NORM_RANGE=0.5,2 on this coordinator (off by default).
    const long = good().map((x) => 3 * x);
    expect(await code(identify(cluster.matcherClient(), long))).toEqual(['INVALID_ARGUMENT', 'probe vector has norm 3.000, outside the accepted 0.5..2 (VECTOR_NORM_RANGE)']);
    // MIN_THRESHOLD=0.2: no request accepts more loosely than that.
    expect(await code(identify(cluster.matcherClient(), good(), { threshold: 0.1 }))).toEqual(['INVALID_ARGUMENT', "threshold 0.1 is below this deployment's floor 0.2 (MIN_THRESHOLD)"]);
    expect((await code(identify(cluster.matcherClient(), good(), { threshold: 0.3 })))[0]).toBe('OK');
    // A long token is refused without being echoed back whole.
    const [tokenCode, tokenDetails] = await code(identify(cluster.matcherClient(), good(), { consistencyToken: 'x'.repeat(100_000) }));
    expect(tokenCode).toBe('INVALID_ARGUMENT');
    expect(tokenDetails.length).toBeLessThan(200);
    expect(tokenDetails).toMatch(/\(100000 chars\)/);
    // A timeout past Node's timer range is clamped (it would otherwise fire at once).
    const stream = new MultiplexedChannel<object, { matches: unknown[] }>(cluster.matcherClient(), 'IdentifyStream');
    const far = await stream.call({ probe: { vector: { values: Array.from(good()) } }, topK: 3 }, { deadline: Date.now() + 4_294_967_000 });
    expect(far.matches).toHaveLength(3);
    stream.close();
    // A shard takes at most 32 queries per Search, and no message larger than that needs.
    const shard = makeClient(loadProtos().Shard, cluster.shards.get('shard-0a')!.address);
    const many = Array.from({ length: 33 }, () => Array.from(good())).flat();
    expect((await code(rawUnary(shard, 'Search', { queries: many, topK: 1 }, { deadline: Date.now() + 5000 })))[1]).toBe('33 queries in one Search; at most 32');
    expect((await code(rawUnary(shard, 'Search', { queries: new Array(40_000).fill(0.01), topK: 1 }, { deadline: Date.now() + 5000 })))[0]).toBe('RESOURCE_EXHAUSTED');
    shard.close();
    // The Matcher takes images up to its limit, not messages of any size.
    expect((await code(call('Identify', { probe: { image: Buffer.alloc(17 * 1024 * 1024, 1) } })))[0]).toBe('RESOURCE_EXHAUSTED');
  });

  it('after all that, Identify still answers', async () => {
    const r = await identify(cluster.matcherClient(), good());
    expect(r.matches).toHaveLength(10);
    expect(Status.OK).toBe(0);
  });
});
