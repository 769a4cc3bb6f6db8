import { sleep } from '@yoco/common';
import {
  createLogger,
  DIRECT_CLIENT_OPTIONS,
  isServiceError,
  loadProtos,
  makeClient,
  MultiplexedChannel,
  RpcServer,
  ServiceMetrics,
  Status,
  type CallEnvelope,
  type MultiplexedHandler,
  type ReplyEnvelope,
} from '@yoco/rpc';
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

const logger = createLogger('multiplexed-limits-test', 'silent');
const open: { server: RpcServer; clients: grpc.Client[]; channels: MultiplexedChannel<Req, Res>[] }[] = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    for (const c of o.channels) c.close();
    for (const c of o.clients) c.close();
    await o.server.shutdown(1000);
  }
});

async function serve(handle: MultiplexedHandler<Req, Res>, limits: { maxInflightPerStream: number; maxInflight: number }, maxSendBytes?: number) {
  const server = new RpcServer({
    address: '127.0.0.1:0',
    logger,
    metrics: new ServiceMetrics('test'),
    multiplexedLimits: limits,
    maxSendBytes,
    services: [{ name: 'yoco.v1.Shard', definition: loadProtos().Shard.service, handlers: {}, multiplexed: { SearchStream: handle } }],
  });
  await server.start();
  const entry = { server, clients: [] as grpc.Client[], channels: [] as MultiplexedChannel<Req, Res>[] };
  open.push(entry);
  const channel = () => {
    // A client (a connection) of its own per channel, as separate callers have.
    const client = makeClient(loadProtos().Shard, `127.0.0.1:${server.port}`, DIRECT_CLIENT_OPTIONS);
    const ch = new MultiplexedChannel<Req, Res>(client, 'SearchStream');
    entry.clients.push(client);
    entry.channels.push(ch);
    return ch;
  };
  const client = () => {
    if (entry.clients.length === 0) channel();
    return entry.clients[0];
  };
  return { server, channel, client };
}

const soon = (ms = 5000) => Date.now() + ms;
const req = (k: number): Req => ({ topK: k, consistencyToken: '' });

function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open: () => open() };
}

async function outcome(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return Status.OK;
  } catch (err) {
    if (!isServiceError(err)) throw err;
    return err.code;
  }
}

describe('multiplexed streams are bounded', () => {
  it('a stream past its cap gets RESOURCE_EXHAUSTED per excess call at once, and stays open', async () => {
    const g = gate();
    let running = 0;
    const { channel } = await serve(async (r) => {
      running++;
      await g.opened;
      return { shardIndex: r.topK, watermark: '' };
    }, { maxInflightPerStream: 4, maxInflight: 16 });
    const ch = channel();
    const calls = Array.from({ length: 10 }, (_, i) => outcome(ch.call(req(i + 1), { deadline: soon() })));
    await sleep(200);
    expect(running).toBe(4);
    g.open();
    const codes = await Promise.all(calls);
    expect(codes.filter((c) => c === Status.OK)).toHaveLength(4);
    expect(codes.filter((c) => c === Status.RESOURCE_EXHAUSTED)).toHaveLength(6);
    // The same stream takes calls again once its calls are answered.
    expect((await ch.call(req(99), { deadline: soon() })).shardIndex).toBe(99);
  });

  it('the server cap holds across streams, and one stream can never take all of it', async () => {
    const g = gate();
    const { channel } = await serve(async (r) => {
      await g.opened;
      return { shardIndex: r.topK, watermark: '' };
    }, { maxInflightPerStream: 3, maxInflight: 5 });
    const [a, b, c] = [channel(), channel(), channel()];
    const fromA = Array.from({ length: 6 }, (_, i) => outcome(a.call(req(i + 1), { deadline: soon() })));
    await sleep(100);
    const fromB = Array.from({ length: 3 }, (_, i) => outcome(b.call(req(i + 1), { deadline: soon() })));
    await sleep(100);
    const fromC = outcome(c.call(req(1), { deadline: soon() }));
    await sleep(100);
    g.open();
    const [ra, rb, rc] = [await Promise.all(fromA), await Promise.all(fromB), await fromC];
    expect(ra.filter((x) => x === Status.OK)).toHaveLength(3);
    expect(rb.filter((x) => x === Status.OK)).toHaveLength(2);
    expect(rc).toBe(Status.RESOURCE_EXHAUSTED);
  });

  it("a caller's cancel (an abort, its deadline) reaches the handler's signal, and the call is answered CANCELLED", async () => {
    const seen: { k: number; aborted: boolean }[] = [];
    const { channel } = await serve(async (r, ctx) => {
      await new Promise<void>((resolve) => {
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
        setTimeout(resolve, 3000);
      });
      seen.push({ k: r.topK, aborted: ctx.signal.aborted });
      return { shardIndex: r.topK, watermark: '' };
    }, { maxInflightPerStream: 8, maxInflight: 8 });
    const ch = channel();
    const controller = new AbortController();
    const aborted = outcome(ch.call(req(1), { deadline: soon(), signal: controller.signal }));
    const timedOut = outcome(ch.call(req(2), { deadline: Date.now() + 150 }));
    await sleep(50);
    controller.abort();
    expect(await aborted).toBe(Status.CANCELLED);
    expect(await timedOut).toBe(Status.DEADLINE_EXCEEDED);
    await sleep(300);
    expect(seen.sort((x, y) => x.k - y.k)).toEqual([
      { k: 1, aborted: true },
      { k: 2, aborted: true },
    ]);
  });

  it('a caller that does not take its replies is not read from: the replies the server holds for it stay few', async () => {
    const big = 'x'.repeat(64 * 1024);
    const { client, server } = await serve(async (r) => ({ shardIndex: r.topK, watermark: big }), { maxInflightPerStream: 64, maxInflight: 64 });
    // A raw stream: calls written, replies left unread.
    const stream = (client() as unknown as Record<string, () => grpc.ClientDuplexStream<CallEnvelope<Req>, ReplyEnvelope<Res>>>).SearchStream();
    stream.on('error', () => undefined);
    stream.pause();
    const total = 3000;
    let sent = 0;
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, server.multiplexedBuffered)), 1);
    const writeAll = (async () => {
      for (let i = 1; i <= total; i++) {
        if (!stream.write({ callId: i, timeoutMs: 30_000, request: req(i) })) await new Promise((r) => stream.once('drain', r));
        sent++;
      }
    })();
    await sleep(1500);
    clearInterval(sampler);
    // Without backpressure the server would hold thousands of 64 KiB replies here; it stops reading after a stream's worth.
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(20);
    // Once the caller reads, everything is answered.
    const got = new Set<number>();
    stream.on('data', (reply: ReplyEnvelope<Res>) => {
      if (reply.code === Status.OK) got.add(Number(reply.callId));
    });
    stream.resume();
    await writeAll;
    for (let i = 0; i < 200 && got.size < total; i++) await sleep(50);
    expect(sent).toBe(total);
    expect(got.size).toBe(total);
    stream.end();
  });
});
