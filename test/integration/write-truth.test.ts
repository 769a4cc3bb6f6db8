import { startRedisServer, type RedisServerHandle, type LocalCluster } from '@yoco/devkit';
import { Rng } from '@yoco/common';
import { UP_REDIS } from '@yoco/cli';
import { GalleryStore } from '@yoco/gallery';
import { isServiceError, Status, unary } from '@yoco/rpc';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUp, DIM, enrol, identify, jobDone, removeSubject, startCluster, unitVector } from '../support/cluster.js';
import { connect, testPrefix } from '../support/redis.js';

let cluster: LocalCluster | undefined;
let ownRedis: RedisServerHandle | undefined;
const prefixes: string[] = [];

afterEach(async () => {
  await cleanUp(cluster, ownRedis, prefixes);
  cluster = undefined;
  ownRedis = undefined;
});

async function failure(p: Promise<unknown>): Promise<{ code: number; details: string; errorCode: string }> {
  try {
    await p;
  } catch (err) {
    if (!isServiceError(err)) throw err;
    return { code: err.code, details: err.details, errorCode: String(err.metadata?.get('yoco-error-code')[0] ?? '') };
  }
  throw new Error('expected the call to fail');
}

describe('the write path says the truth', () => {
  it('a request_id makes a retry safe: the same key gets the same job; a key reused for another request is refused', async () => {
    const prefix = testPrefix('truth-id');
    prefixes.push(prefix);
    cluster = await startCluster(prefix, { shards: 1 });
    const client = cluster.matcherClient();
    const v = unitVector(new Rng(41));
    const first = await enrol(client, 'idem-1', [v], { requestId: 'gate-7:req-0001' });
    const again = await enrol(client, 'idem-1', [v], { requestId: 'gate-7:req-0001', wait: true });
    expect(again.jobId).toBe(first.jobId);
    expect(again.consistencyToken).not.toBe('');
    const other = await failure(enrol(client, 'idem-2', [v], { requestId: 'gate-7:req-0001' }));
    expect(other.code).toBe(Status.INVALID_ARGUMENT);
    expect(other.errorCode).toBe('REQUEST_ID');
    expect((await failure(enrol(client, 'idem-3', [v], { requestId: 'spaces are not ok' }))).errorCode).toBe('REQUEST_ID');
    const rm1 = await unary(client, 'Remove', { subjectId: 'idem-1', requestId: 'gate-7:req-0002' }, { deadline: Date.now() + 5000 });
    const rm2 = await unary(client, 'Remove', { subjectId: 'idem-1', requestId: 'gate-7:req-0002' }, { deadline: Date.now() + 5000 });
    expect(rm2.jobId).toBe(rm1.jobId);
  });

  it('when Redis takes the job but does not answer in time, the caller hears that it may have landed, and a retry with the same request_id finds it', async () => {
    ownRedis = await startRedisServer();
    cluster = await startCluster('yoco:', { shards: 1, redisUrl: ownRedis.url });
    const client = cluster.matcherClient();
    const rng = new Rng(42);
    await enrol(client, 'warm-up', [unitVector(rng)], { wait: true });
    const v = unitVector(rng);
    // Frozen, not gone: the connection stays up, the command is sent, no answer comes.
    ownRedis.process.kill('SIGSTOP');
    const unknown = await failure(enrol(client, 'maybe-1', [v], { requestId: 'retry-me' }));
    ownRedis.process.kill('SIGCONT');
    expect(unknown.code).toBe(Status.UNAVAILABLE);
    expect(unknown.errorCode).toBe('OUTCOME_UNKNOWN');
    expect(unknown.details).toMatch(/may or may not have been queued; retry with the same request_id/);
    expect(unknown.details).not.toMatch(/nothing was stored or queued/);
    // The retry gets the job the first attempt queued (it did land), and waits for it.
    const retried = await enrol(client, 'maybe-1', [v], { requestId: 'retry-me', wait: true });
    expect(retried.consistencyToken).not.toBe('');
    const redis = new Redis(ownRedis.url);
    expect(await new GalleryStore(redis, { prefix: 'yoco:', dim: DIM }).templateIds('maybe-1')).toHaveLength(1);
    const jobs = await redis.keys('yoco:bull:enrol:[0-9]*');
    expect(jobs.filter((k) => /:\d+$/.test(k))).toHaveLength(2);
    redis.disconnect();
  });

  it('Remove queues without asking Redis first: an Enrol still in the queue is removed too', async () => {
    const prefix = testPrefix('truth-rm');
    prefixes.push(prefix);
    cluster = await startCluster(prefix, { shards: 1, enrollerEnv: { ENROLLER_CONCURRENCY: '8' } });
    const client = cluster.matcherClient();
    const rng = new Rng(43);
    for (let i = 0; i < 20; i++) {
      const v = unitVector(rng);
      const queued = await enrol(client, `late-${i}`, [v]);
      // Accepted at once, whether or not the enrolment has been applied yet.
      const removal = await removeSubject(client, `late-${i}`, false);
      const removed = await jobDone(client, removal.jobId);
      await jobDone(client, queued.jobId);
      const r = await identify(client, v, { topK: 5, consistencyToken: removed.consistencyToken });
      expect(r.matches.map((m) => m.subjectId)).not.toContain(`late-${i}`);
    }
    const redis = connect();
    const store = new GalleryStore(redis, { prefix, dim: DIM });
    for (let i = 0; i < 20; i++) expect(await store.templateIds(`late-${i}`)).toEqual([]);
    redis.disconnect();
  });

  it("npm start's Redis fsyncs every write to its append-only file", async () => {
    const redis = await startRedisServer(UP_REDIS);
    try {
      const r = new Redis(redis.url);
      expect(await r.config('GET', 'appendfsync')).toEqual(['appendfsync', 'always']);
      expect(await r.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      r.disconnect();
    } finally {
      await redis.stop();
    }
  });
});
