import { type LocalCluster } from '@yoco/devkit';
import { Rng } from '@yoco/common';

import { GallerySlice, StoreKeys, type Template } from '@yoco/gallery';
import { createScorer, metricHead } from '@yoco/head';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MultiplexedChannel, unary } from '@yoco/rpc';
import * as grpc from '@grpc/grpc-js';
import { DIM, HIDDEN, identify, startCluster, unitVector, writeGallery, type Gallery, type IdentifyReply } from '../support/cluster.js';
import { connect, flushPrefix, testPrefix } from '../support/redis.js';

const prefix = testPrefix('identify');
let gallery: Gallery;
let reference: GallerySlice;

beforeAll(async () => {
  gallery = await writeGallery(prefix, 5000, 1);
  // The truth: one process, the whole gallery, the per-pair float64 engine.
  reference = new GallerySlice(await createScorer(metricHead({ dim: DIM, hidden: HIDDEN }), { engine: 'reference' }));
  const all: Template[] = [];
  for (const [subjectId, vectors] of gallery.subjects) {
    vectors.forEach((vector, i) => all.push({ subjectId, templateId: `${subjectId}/${i}`, vector }));
  }
  reference.add(all);
});

afterAll(async () => {
  const redis = connect();
  await flushPrefix(redis, prefix);
  redis.disconnect();
});

function probes(seed: number, n: number): Float32Array[] {
  const rng = new Rng(seed);
  const ids = [...gallery.subjects.keys()];
  return Array.from({ length: n }, (_, i) => {
    if (i % 2 === 1) return unitVector(rng);
    // Half the probes are noisy copies of an enrolled template.
    const v = gallery.subjects.get(ids[rng.int(ids.length)])![0].map((x) => x + 0.05 * rng.normal() / Math.sqrt(DIM));
    return v;
  });
}

describe.each([
  { k: 1, replicas: 1, engine: 'factorized' },
  { k: 2, replicas: 2, engine: 'factorized' },
  { k: 3, replicas: 1, engine: 'factorized' },
  // int8 from 1024 rows (the default is 8192): each shard holds about 2500 here.
  { k: 2, replicas: 1, engine: 'int8' },
])('Identify over 5000 subjects with k=$k shards x $replicas replicas ($engine)', ({ k, replicas, engine }) => {
  let cluster: LocalCluster;
  beforeAll(async () => {
    // Each k is a fresh deployment over the same gallery: the topology on record (which SHARD_COUNT only seeds) goes first.
    const redis = connect();
    await redis.del(new StoreKeys(prefix).topology);
    redis.disconnect();
    cluster = await startCluster(prefix, { shards: k, replicas, shardEnv: () => ({ SHARD_ENGINE: engine, SHARD_INT8_MIN_ROWS: '1024' }) });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('returns exactly the single-process reference top-k, each subject once', async () => {
    const client = cluster.matcherClient();
    let templates = 0;
    for (const v of gallery.subjects.values()) templates += v.length;
    for (const [i, q] of probes(10 + k, 12).entries()) {
      const topK = [1, 10, 37][i % 3];
      const got = await identify(client, q, { topK });
      const want = await reference.search(q, topK);
      expect(got.matches.map((m) => m.subjectId)).toEqual(want.map((m) => m.subjectId));
      for (let j = 0; j < want.length; j++) expect(Math.abs(got.matches[j].score - want[j].score)).toBeLessThanOrEqual(1e-5);
      expect(new Set(got.matches.map((m) => m.subjectId)).size).toBe(got.matches.length);
      expect(got.gallerySize).toBe(templates);
      expect(got.partial).toBe(false);
      // accepted follows the threshold in force (the deployment default, 0.5).
      for (const m of got.matches) expect(m.accepted).toBe(m.score >= 0.5);
    }
    // Status says which scan answered, and what a template costs it (the int8 engine keeps both copies of P).
    const status = await unary(client, 'ClusterStatus', {});
    for (const r of status.shards.flatMap((s) => s.replicas)) {
      expect(r.engine).toBe(engine);
      expect(r.kernel).toMatch(engine === 'int8' ? /^int8 (simd128|relaxed-simd)$/ : /^float32 simd128$/);
      expect(Number(r.bytesPerTemplate)).toBeGreaterThan(HIDDEN * (engine === 'int8' ? 5 : 4));
    }
  });

  it('IdentifyStream answers concurrent calls as Identify does, each with its own status', async () => {
    const stream = new MultiplexedChannel<object, IdentifyReply>(cluster.matcherClient(), 'IdentifyStream');
    try {
      // 15 and one bad call: the 16 calls a stream may have in flight by default (STREAM_MAX_INFLIGHT).
      const qs = probes(20 + k, 15);
      const call = (request: object) => stream.call(request, { deadline: Date.now() + 10_000 });
      const [streamed, unaryReplies] = await Promise.all([
        Promise.allSettled([
          ...qs.map((q, i) => call({ probe: { vector: { f32le: Buffer.from(q.buffer) } }, topK: 1 + i })),
          call({ probe: { vector: { values: [1, 2, 3] } } }),
        ]),
        Promise.all(qs.map((q, i) => identify(cluster.matcherClient(), q, { topK: 1 + i }))),
      ]);
      for (const [i, want] of unaryReplies.entries()) {
        const got = streamed[i];
        expect(got.status).toBe('fulfilled');
        expect((got as PromiseFulfilledResult<IdentifyReply>).value.matches).toEqual(want.matches);
      }
      const bad = (streamed[qs.length] as PromiseRejectedResult).reason as grpc.ServiceError;
      expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(bad.details).toContain(`probe vector has 3 values, expected ${DIM}`);
      expect(bad.metadata.get('yoco-error-code')).toEqual(['VECTOR_LENGTH']);
      // The stream carries on after a refused call.
      expect((await call({ probe: { vector: { values: Array.from(qs[0]) } }, topK: 3 })).matches).toHaveLength(3);
      // ClusterStatus shows, per shard index, the calls' p50 and the shard's own Search time within them.
      const status = await unary(cluster.matcherClient(), 'ClusterStatus', {});
      expect(status.shards).toHaveLength(k);
      for (const s of status.shards) {
        expect(s.searchP50Ms).toBeGreaterThan(0);
        expect(s.callP50Ms).toBeGreaterThanOrEqual(s.searchP50Ms);
      }
    } finally {
      stream.close();
    }
  });
});
