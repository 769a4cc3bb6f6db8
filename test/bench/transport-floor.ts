/**
 * The transport's own floor on this machine: a round trip to an echo server
 * in another process, over grpc-js (a unary call with a generic service, no
 * protobuf, nothing else in the handler) and over a raw TCP socket. What any
 * hop built on grpc-js costs before it does any work: bench:cluster prints it
 * beside its hops. `tsx test/bench/transport-floor.ts --serve` is the echo
 * server (it prints its ports as JSON and exits with its parent).
 */
import { fork } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { percentile } from './bench-util.js';

const ECHOED = 200;
const identity = (b: Buffer) => b;
const service: grpc.ServiceDefinition = {
  echo: { path: '/yoco.bench.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

async function serve(): Promise<void> {
  const server = new grpc.Server();
  server.addService(service, { echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request.subarray(0, ECHOED)) });
  const grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  const tcp = createServer((c) => c.on('data', (d: Buffer) => c.write(d.subarray(0, ECHOED))));
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const tcpPort = (tcp.address() as { port: number }).port;
  process.send!({ grpcPort, tcpPort });
  process.on('disconnect', () => process.exit(0));
}

export interface TransportFloor {
  grpc_unary_round_trip_p50_ms: number;
  tcp_round_trip_p50_ms: number;
  payload_bytes: number;
}

/** p50 round trips of `calls` calls carrying `bytes` (a probe vector's 15 KB by default), one at a time. */
export async function transportFloor(calls = 400, bytes = 15360): Promise<TransportFloor> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    const { grpcPort, tcpPort } = await new Promise<{ grpcPort: number; tcpPort: number }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { grpcPort: number; tcpPort: number }));
      child.once('exit', (code) => reject(new Error(`the echo server exited (${code})`)));
    });
    const payload = Buffer.alloc(bytes, 7);
    const Client = grpc.makeGenericClientConstructor(service, 'Echo');
    const client = new Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
    const viaGrpc = () => new Promise<void>((resolve, reject) => client.echo(payload, (err: Error | null) => (err ? reject(err) : resolve())));
    const socket: Socket = connect(tcpPort, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const want = Math.min(ECHOED, bytes);
    const viaTcp = () =>
      new Promise<void>((resolve) => {
        let got = 0;
        const onData = (d: Buffer) => {
          got += d.length;
          if (got < want) return;
          socket.off('data', onData);
          resolve();
        };
        socket.on('data', onData);
        socket.write(payload);
      });
    const time = async (run: () => Promise<void>) => {
      for (let i = 0; i < 100; i++) await run();
      const times: number[] = [];
      for (let i = 0; i < calls; i++) {
        const t = performance.now();
        await run();
        times.push(performance.now() - t);
      }
      return percentile(times, 50);
    };
    const grpcP50 = await time(viaGrpc);
    const tcpP50 = await time(viaTcp);
    client.close();
    socket.destroy();
    return { grpc_unary_round_trip_p50_ms: grpcP50, tcp_round_trip_p50_ms: tcpP50, payload_bytes: bytes };
  } finally {
    child.kill();
  }
}

if (process.argv.includes('--serve')) await serve();
