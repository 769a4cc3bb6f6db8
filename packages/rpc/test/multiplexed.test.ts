import { InvalidArgumentError, sleep } from '@yoco/common';
import { createLogger, DIRECT_CLIENT_OPTIONS, isServiceError, loadProtos, makeClient, MultiplexedChannel, RpcServer, ServiceMetrics, Status, unary, type MultiplexedHandler } from '@yoco/rpc';
import type * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';

interface Req {
  topK: number;
  consistencyToken: string;
}
interface Res {
  shardIndex: number;
  watermark: string;
}

const logger = createLogger('multiplexed-test', 'silent');
const open: { server?: RpcServer; client?: grpc.Client; channel?: MultiplexedChannel<Req, Res> }[] = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    o.channel?.close();
    o.client?.close();
    await o.server?.shutdown(1000);
  }
});

/** A Shard server whose SearchStream runs `handle`; a channel to it. */
async function serve(handle: MultiplexedHandler<Req, Res> | undefined, port = 0) {
  const server = new RpcServer({
    address: `127.0.0.1:${port}`,
    logger,
    metrics: new ServiceMetrics('test'),
    services: [{ name: 'yoco.v1.Shard', definition: loadProtos().Shard.service, handlers: {}, multiplexed: handle ? { SearchStream: handle } : {} }],
  });
  await server.start();
  // As the coordinator's: it fails over itself, so no transparent retries underneath.
  const client = makeClient(loadProtos().Shard, `127.0.0.1:${server.port}`, DIRECT_CLIENT_OPTIONS);
  const channel = new MultiplexedChannel<Req, Res>(client, 'SearchStream');
  const entry = { server, client, channel };
  open.push(entry);
  return entry;
}

const soon = (ms = 5000) => Date.now() + ms;

async function failure(p: Promise<unknown>): Promise<grpc.ServiceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isServiceError(err)) throw new Error(`expected a gRPC error, got ${String(err)}`);
  return err;
}

describe('unary calls multiplexed over one stream', () => {
  it('answers many concurrent calls, finished in any order, each to its own caller', async () => {
    const { channel } = await serve(async (req) => {
      await sleep((req.topK * 7) % 23);
      return { shardIndex: req.topK, watermark: `w${req.topK}` };
    });
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => channel.call({ topK: i + 1, consistencyToken: '' }, { deadline: soon() })));
    expect(replies.map((r) => r.shardIndex)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(replies[41].watermark).toBe('w42');
  });

  it("gives each call its own status: a handler's error fails that call only, with its code and yoco error code", async () => {
    const { channel } = await serve(async (req) => {
      if (req.topK === 2) throw new InvalidArgumentError('top_k 2 is unlucky', 'TOP_K');
      return { shardIndex: req.topK, watermark: '' };
    });
    const [ok, bad] = await Promise.allSettled([1, 2].map((k) => channel.call({ topK: k, consistencyToken: '' }, { deadline: soon() })));
    expect(ok.status === 'fulfilled' && ok.value.shardIndex).toBe(1);
    const err = (bad as PromiseRejectedResult).reason as grpc.ServiceError;
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toBe('top_k 2 is unlucky');
    expect(err.metadata.get('yoco-error-code')).toEqual(['TOP_K']);
    // The stream is still good.
    expect((await channel.call({ topK: 3, consistencyToken: '' }, { deadline: soon() })).shardIndex).toBe(3);
  });

  it('fails a call at its deadline, and the handler is told that deadline', async () => {
    const seen: number[] = [];
    const { channel } = await serve(async (req, { callerDeadline }) => {
      seen.push(callerDeadline ?? NaN);
      await sleep(req.topK);
      return { shardIndex: 1, watermark: '' };
    });
    const deadline = soon(150);
    const started = Date.now();
    const err = await failure(channel.call({ topK: 400, consistencyToken: '' }, { deadline }));
    expect(err.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(900);
    expect(Math.abs(seen[0] - deadline)).toBeLessThan(100);
    expect((await failure(channel.call({ topK: 1, consistencyToken: '' }, { deadline: Date.now() - 1 }))).code).toBe(Status.DEADLINE_EXCEEDED);
  });

  it('fails a call with CANCELLED when its signal aborts', async () => {
    const { channel } = await serve(async () => {
      await sleep(500);
      return { shardIndex: 1, watermark: '' };
    });
    const controller = new AbortController();
    const pending = failure(channel.call({ topK: 1, consistencyToken: '' }, { deadline: soon(), signal: controller.signal }));
    controller.abort();
    expect((await pending).code).toBe(Status.CANCELLED);
  });

  it('on shutdown, finishes the calls in flight, ends the stream, and does not hold the shutdown up', async () => {
    const entry = await serve(async (req) => {
      await sleep(req.topK);
      return { shardIndex: req.topK, watermark: '' };
    });
    const { server, channel } = entry;
    expect((await channel.call({ topK: 1, consistencyToken: '' }, { deadline: soon() })).shardIndex).toBe(1);
    const inFlight = channel.call({ topK: 300, consistencyToken: '' }, { deadline: soon() });
    await sleep(50);
    const started = Date.now();
    await server.shutdown(10_000);
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await inFlight).shardIndex).toBe(300);
    entry.server = undefined as unknown as RpcServer;
    // Nothing listens any more: the next call fails as a unary call would, with UNAVAILABLE.
    expect((await failure(channel.call({ topK: 1, consistencyToken: '' }, { deadline: soon() }))).code).toBe(Status.UNAVAILABLE);
  });

  it('fails the calls in flight with UNAVAILABLE when the server goes away, and opens a new stream to a server back on the port', async () => {
    const first = await serve(async (req) => {
      await sleep(req.topK);
      return { shardIndex: 1, watermark: '' };
    });
    const port = first.server.port;
    await first.channel.call({ topK: 1, consistencyToken: '' }, { deadline: soon() });
    const pending = failure(first.channel.call({ topK: 2000, consistencyToken: '' }, { deadline: soon() }));
    await sleep(50);
    // As good as a crash: open calls are cut off, not drained.
    (first.server as unknown as { server: grpc.Server }).server.forceShutdown();
    expect([Status.UNAVAILABLE, Status.INTERNAL, Status.CANCELLED]).toContain((await pending).code);
    const second = await serve(async () => ({ shardIndex: 2, watermark: '' }), port);
    let reply: Res | undefined;
    for (let i = 0; i < 50 && !reply; i++) {
      reply = await first.channel.call({ topK: 1, consistencyToken: '' }, { deadline: soon(1000) }).catch(() => undefined);
      if (!reply) await sleep(100);
    }
    expect(second.server.port).toBe(port);
    expect(reply?.shardIndex).toBe(2);
  });

  it('a server without the stream method answers UNIMPLEMENTED, which callers can fall back on', async () => {
    const { channel, client } = await serve(undefined);
    expect((await failure(channel.call({ topK: 1, consistencyToken: '' }, { deadline: soon() }))).code).toBe(Status.UNIMPLEMENTED);
    expect((await failure(unary(client, 'Search', {}, { deadline: soon() }))).code).toBe(Status.UNIMPLEMENTED);
  });
});
