import { Metadata } from '@grpc/grpc-js';
import { EnrolmentService, ProbeReader, type CoordinatorConfig, type DuplicateRead } from '@yoco/coordinator';
import { describe, expect, it } from 'vitest';

type Deps = ConstructorParameters<typeof EnrolmentService>;

/** An EnrolmentService over fakes: a store whose stream head is `head`, a queue that takes everything, a search that records how it was asked. */
function service(mode: 'warn' | 'refuse', head: () => Promise<string>) {
  const reads: DuplicateRead[] = [];
  const queued: string[] = [];
  const config = { duplicateCheck: mode, defaultTimeoutMs: 5000, normRange: undefined } as unknown as CoordinatorConfig;
  const store = { streamHead: head, dim: async () => 4 } as unknown as Deps[4];
  const queue = { enrol: async (subjectId: string) => (queued.push(subjectId), { id: '1' }) } as unknown as Deps[3];
  const svc = new EnrolmentService(config, { dim: 4 } as unknown as Deps[1], new ProbeReader(config, undefined), queue, store, async (_v, _deadline, read) => {
    reads.push(read);
    return [];
  });
  const call = { getDeadline: () => Date.now() + 5000, metadata: new Metadata() } as unknown as Parameters<EnrolmentService['enrol']>[1];
  const enrol = (subjectId: string) => svc.enrol({ subjectId, probes: [{ kind: 'vector', vector: { values: [1, 0, 0, 0], f32le: Buffer.alloc(0) } }], replace: false, wait: false, requestId: '' } as never, call);
  return { reads, queued, enrol };
}

describe('the duplicate check reads at the head of the change stream', () => {
  it('so a subject acknowledged a moment ago, not yet applied on every shard, is searched for; refuse never takes a partial answer', async () => {
    const warn = service('warn', async () => '1700000000000-3');
    await warn.enrol('s1');
    expect(warn.reads).toEqual([{ consistencyToken: '1700000000000-3', allowPartial: true }]);
    const refuse = service('refuse', async () => '1700000000000-4');
    await refuse.enrol('s2');
    expect(refuse.reads).toEqual([{ consistencyToken: '1700000000000-4', allowPartial: false }]);
  });

  it('without Redis (down, or frozen), warn still checks what the shards hold and goes ahead; refuse queues nothing', async () => {
    const down = async () => Promise.reject(new Error('connect ECONNREFUSED'));
    const warn = service('warn', down);
    await warn.enrol('s3');
    expect(warn.reads).toEqual([{ consistencyToken: '', allowPartial: true }]);
    expect(warn.queued).toEqual(['s3']);
    const refuse = service('refuse', down);
    await expect(refuse.enrol('s4')).rejects.toMatchObject({ code: 'DUPLICATE_CHECK', message: expect.stringMatching(/could not run.*nothing was queued/) });
    expect(refuse.queued).toEqual([]);
    // A Redis that holds the connection and never answers (frozen): the check gives up in half a second.
    const frozen = service('warn', () => new Promise<string>(() => undefined));
    const started = Date.now();
    await frozen.enrol('s5');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(frozen.reads).toEqual([{ consistencyToken: '', allowPartial: true }]);
  });
});
