import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@yoco/common';
import { startRedisServer, type LocalCluster, type RedisServerHandle } from '@yoco/devkit';
import { connectRedis, StoreKeys } from '@yoco/gallery';
import { bullPrefix, encodeVector, QUEUE_NAME } from '@yoco/queue';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanUp, enrol, startCluster, unitVector } from '../support/cluster.js';
import { testPrefix } from '../support/redis.js';

const prefix = testPrefix('removal');
let redis: RedisServerHandle | undefined;
let cluster: LocalCluster | undefined;
afterAll(() => cleanUp(cluster, redis, []));

/** Every value of every key, as bytes: strings, hashes, lists, sets, sorted sets and streams. */
async function everyValue(r: Redis): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const key of await r.keysBuffer('*')) {
    const type = await r.type(key);
    if (type === 'string') out.push((await r.getBuffer(key))!);
    else if (type === 'hash') out.push(...Object.values(await r.hgetallBuffer(key)));
    else if (type === 'list') out.push(...(await r.lrangeBuffer(key, 0, -1)));
    else if (type === 'set') out.push(...(await r.smembersBuffer(key)));
    else if (type === 'zset') out.push(...(await r.zrangeBuffer(key, 0, -1)));
    else if (type === 'stream') for (const [, fields] of await r.xrangeBuffer(key, '-', '+')) out.push(...fields);
    out.push(key);
  }
  return out;
}

/** The forms a vector could be stored in: its raw f32le bytes, and their base64 (job data). A prefix of each suffices. */
const traces = (v: Float32Array) => {
  const raw = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return [raw.subarray(0, 64), Buffer.from(encodeVector(v).slice(0, 64))];
};

describe('removal that holds', () => {
  it('after `yoco remove --verify` nothing of the vectors is left: no key, no job in any state, not the AOF once rewritten, no replica', async () => {
    redis = await startRedisServer({ appendonly: true, appendfsync: 'always' });
    cluster = await startCluster(prefix, {
      shards: 1,
      replicas: 2,
      redisUrl: redis.url,
      enrollerEnv: { AOF_REWRITE_AFTER_REMOVE_MS: '300' },
      coordinatorEnv: { AOF_REWRITE_AFTER_REMOVE_MS: '300' },
    });
    const rng = new Rng(31);
    const [kept, gone, retried] = [unitVector(rng), unitVector(rng), unitVector(rng)];
    const client = cluster.matcherClient();
    await enrol(client, 'stayer', [kept], { wait: true });
    await enrol(client, 'leaver', [gone], { wait: true });
    // A job of the subject waiting out a retry's backoff (delayed), holding its vectors, queued before the removal.
    const r = connectRedis(redis.url, 'tool');
    const queue = new Queue(QUEUE_NAME, { connection: r, prefix: bullPrefix(prefix) });
    const delayed = await queue.add('enrol', { kind: 'enrol', subjectId: 'leaver', vectors: [encodeVector(retried)], replace: false, vectorCount: 1 }, { delay: 3_600_000 });
    await r.sadd(new StoreKeys(prefix).jobsOf('leaver'), String(delayed.id));
    const all = async () => Buffer.concat(await everyValue(r));
    // Before: the record holds the enrolled vector's bytes, the delayed job the other's (base64 in its JSON).
    expect((await all()).includes(traces(gone)[0])).toBe(true);
    expect((await all()).includes(traces(retried)[1])).toBe(true);
    const aofRewritesBefore = Number(/aof_rewrites:(\d+)/.exec(await r.info('persistence'))![1]);

    const cli = spawnSync(process.execPath, [join(process.cwd(), 'packages/cli/bin/yoco.js'), 'remove', 'leaver', '--verify', '--address', cluster.address], { encoding: 'utf8', timeout: 30_000 });
    expect(cli.stdout).toMatch(/shard 0 replica .*: holds none \(watermark \d+-\d+\)[\s\S]*shard 0 replica .*: holds none/);
    expect(cli.stdout).toContain('store of record: 0 templates; queued jobs carrying its vectors: 0');
    expect(cli.stdout).toContain('REMOVED: nothing of leaver is held');
    expect(cli.status, cli.stderr).toBe(0);

    // Redis now: not a byte of either vector, in any key (the delayed job lost them), while the other subject's are there.
    const now = await all();
    for (const t of [...traces(gone), ...traces(retried)]) expect(now.includes(t)).toBe(false);
    expect(now.includes(traces(kept)[0])).toBe(true);
    // The AOF: rewritten within the bound, and then without them.
    for (let i = 0; i < 100 && !(Number(/aof_rewrites:(\d+)/.exec(await r.info('persistence'))![1]) > aofRewritesBefore && /aof_rewrite_in_progress:0/.test(await r.info('persistence'))); i++) {
      await new Promise((res) => setTimeout(res, 100));
    }
    const aofDir = join(redis.dir, 'appendonlydir');
    const aof = Buffer.concat(readdirSync(aofDir).map((f) => readFileSync(join(aofDir, f))));
    expect(aof.includes(traces(kept)[0])).toBe(true);
    for (const t of [...traces(gone), ...traces(retried)]) expect(aof.includes(t)).toBe(false);
    // The delayed job, when its time comes, ends as stale: it carries nothing to write.
    const job = await queue.getJob(String(delayed.id));
    expect(job?.data).toMatchObject({ vectors: [], superseded: true });
    await queue.close();
    r.disconnect();
  });
});
