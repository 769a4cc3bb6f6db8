import { spawn } from 'node:child_process';
import { Matcher, MatcherError } from '@yoco/client';
import { Rng } from '@yoco/common';
import { stopChild, type LocalCluster } from '@yoco/devkit';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanUp, DIM, startCluster, unitVector, writeGallery } from '../support/cluster.js';
import { testPrefix } from '../support/redis.js';

const prefix = testPrefix('client');
let cluster: LocalCluster | undefined;
afterAll(() => cleanUp(cluster, undefined, [prefix]));

const probe = (v: Float32Array) => ({ vector: { f32le: Buffer.from(v.buffer, v.byteOffset, v.byteLength) } });

describe('@yoco/client, the gateway client', () => {
  it('typed errors, writes made safe to retry, and an IdentifyStream that outlives a coordinator restart', async () => {
    await writeGallery(prefix, 100, 4);
    cluster = await startCluster(prefix, { shards: 1 });
    const c = cluster;
    const matcher = new Matcher({ address: c.address, attempts: 20, backoffMs: 100 });
    const rng = new Rng(8);

    // Errors carry the status and YOCO's code.
    const bad = await matcher.identify({ probe: probe(new Float32Array(DIM - 1)) }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(MatcherError);
    expect(bad).toMatchObject({ code: 3, status: 'INVALID_ARGUMENT', yocoCode: 'VECTOR_LENGTH' });
    expect(await matcher.call('GetSubject', { subjectId: 'nobody' }).catch((e: MatcherError) => [e.status, e.yocoCode])).toEqual(['NOT_FOUND', 'SUBJECT_NOT_FOUND']);

    // The same request_id twice is one job: what makes a retried Enrol safe.
    const v = unitVector(rng);
    const once = await matcher.enrol({ subjectId: 'client-1', probes: [probe(v)], requestId: 'gateway-7:req-1', wait: true });
    const again = await matcher.enrol({ subjectId: 'client-1', probes: [probe(v)], requestId: 'gateway-7:req-1', wait: true });
    expect(again.jobId).toBe(once.jobId);

    // Steady calls over one stream while the coordinator restarts: none fails.
    const stream = matcher.identifyStream();
    let running = true;
    const failures: string[] = [];
    let calls = 0;
    const loop = (async () => {
      while (running) {
        await stream.identify({ probe: probe(unitVector(rng)), topK: 3 }).then(
          () => calls++,
          (e: MatcherError) => failures.push(e.message),
        );
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const before = calls;
    await stopChild(c.coordinator.process, 'SIGTERM');
    c.coordinator.process = spawn(process.execPath, [c.coordinator.script], { env: { ...process.env, ...c.coordinator.env }, stdio: 'ignore' });
    await c.waitReady();
    const after = calls;
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await loop;
    stream.close();
    matcher.close();
    expect(failures).toEqual([]);
    expect(before).toBeGreaterThan(0);
    expect(calls).toBeGreaterThan(after);
  });
});
