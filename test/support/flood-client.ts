/**
 * A caller that floods one multiplexed stream: `calls` calls written as fast
 * as the stream takes them, replies read as they come. Run as a process of
 * its own (node --import tsx), so the caller it competes with is measured
 * without sharing its event loop. Prints one JSON line: reply codes and
 * counts, and whether every call got its reply.
 *
 *   flood-client.ts identify|search ADDRESS CALLS VECTOR_JSON
 */
import { loadProtos, makeClient, type CallEnvelope, type ReplyEnvelope } from '@yoco/rpc';
import type * as grpc from '@grpc/grpc-js';

const [kind, address, callsArg, vectorJson] = process.argv.slice(2);
const calls = Number(callsArg);
const vector = Float32Array.from(JSON.parse(vectorJson) as number[]);
const f32 = Buffer.from(vector.buffer);
const protos = loadProtos();
const client: grpc.Client = kind === 'identify' ? makeClient(protos.Matcher, address) : makeClient(protos.Shard, address);
const method = kind === 'identify' ? 'IdentifyStream' : 'SearchStream';
const stream = (client as unknown as Record<string, () => grpc.ClientDuplexStream<CallEnvelope<object>, ReplyEnvelope<object>>>)[method]();
const request = kind === 'identify' ? { probe: { vector: { f32le: f32 } }, topK: 5 } : { queriesF32: f32, topK: 5 };

const codes: Record<string, number> = {};
let answered = 0;
const started = Date.now();
const done = new Promise<string>((resolve) => {
  stream.on('data', (reply: ReplyEnvelope<object>) => {
    codes[reply.code] = (codes[reply.code] ?? 0) + 1;
    if (++answered === calls) resolve('answered');
  });
  stream.on('error', (err: grpc.ServiceError) => resolve(`stream failed: ${err.code} ${err.details}`));
  stream.on('end', () => resolve('stream ended'));
});
for (let i = 1; i <= calls; i++) {
  if (!stream.write({ callId: i, timeoutMs: 30_000, request })) await new Promise((r) => stream.once('drain', r));
}
const sentMs = Date.now() - started;
const outcome = await Promise.race([done, new Promise<string>((r) => setTimeout(() => r('timed out'), 120_000))]);
console.log(JSON.stringify({ outcome, answered, codes, sentMs, ms: Date.now() - started }));
stream.end();
client.close();
process.exit(0);
