import { status as Status, type Client, type Metadata, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { MAX_CALL_TIMEOUT_MS } from '@yoco/common';
import type { CallEnvelope, ReplyEnvelope } from './multiplexed-server.js';
import { errorMetadata, statusName } from './status.js';

export type CallError = Error & { code: number; details: string; metadata: Metadata };

/** The error a unary call with this status would have failed with (isServiceError holds for it). */
export function callError(code: number, details: string, errorCode = ''): CallError {
  return Object.assign(new Error(`${code} ${statusName(code)}: ${details}`), { code, details, metadata: errorMetadata(errorCode) });
}

interface Pending<Res> {
  resolve(response: Res): void;
  reject(err: CallError): void;
  timer: NodeJS.Timeout;
}

/** One open stream and the calls sent on it: when it breaks, exactly these fail. */
interface Line<Req, Res> {
  stream: ClientDuplexStream<CallEnvelope<Req>, ReplyEnvelope<Res>>;
  pending: Map<number, Pending<Res>>;
}

export interface MultiplexedCallOptions {
  /** Epoch ms. */
  deadline: number;
  /** Aborting fails the call with CANCELLED at once (the server may still finish it). */
  signal?: AbortSignal;
}

/**
 * Messages a stream may hold unsent before new calls on it fail fast: a
 * server that stopped reading (frozen, overloaded) would otherwise make this
 * process buffer every call sent to it until the connection's keepalive
 * gives up on it.
 */
const MAX_UNSENT = 256;

/**
 * The client side of unary calls multiplexed over one bidirectional stream
 * (see MultiplexedStreams): a call is one message each way on a stream that
 * stays open, instead of a new HTTP/2 stream with headers and trailers. Calls
 * fail like unary ones: the server's status per call, DEADLINE_EXCEEDED from
 * a local timer, and the stream's own status (UNAVAILABLE when the server
 * went away) for every call in flight when it breaks; the next call opens a
 * new stream. A call given up on (its deadline, an abort) is cancelled on the
 * server too, so it does not spend work there for nobody.
 */
export class MultiplexedChannel<Req, Res> {
  private line: Line<Req, Res> | undefined;
  private nextId = 0;
  private closed = false;

  constructor(private readonly client: Client, private readonly method: string) {
    if (typeof (client as unknown as Record<string, unknown>)[method] !== 'function') throw new Error(`the client has no method ${method}`);
  }

  call(request: Req, options: MultiplexedCallOptions): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      if (this.closed) return reject(callError(Status.CANCELLED, 'the channel is closed'));
      const timeoutMs = Math.ceil(options.deadline - Date.now());
      if (timeoutMs <= 0) return reject(callError(Status.DEADLINE_EXCEEDED, 'the deadline passed before the call was sent'));
      if (options.signal?.aborted) return reject(callError(Status.CANCELLED, 'Cancelled on client'));
      const line = this.open();
      if (line.stream.writableLength >= MAX_UNSENT) {
        return reject(callError(Status.UNAVAILABLE, `the server is not reading: ${line.stream.writableLength} calls wait to be sent on this stream`));
      }
      const callId = ++this.nextId;
      const giveUp = (code: number, details: string) => {
        const p = settle(line, callId);
        if (!p) return;
        p.reject(callError(code, details));
        // A message of its own tells the server to skip the call; not worth queueing behind a stuck stream.
        if (line.stream.writable && line.stream.writableLength < MAX_UNSENT) line.stream.write({ callId, timeoutMs: 0, cancel: true } as CallEnvelope<Req>);
      };
      const timer = setTimeout(() => giveUp(Status.DEADLINE_EXCEEDED, 'Deadline exceeded'), Math.min(timeoutMs, MAX_CALL_TIMEOUT_MS));
      line.pending.set(callId, { resolve, reject, timer });
      options.signal?.addEventListener('abort', () => giveUp(Status.CANCELLED, 'Cancelled on client'), { once: true });
      line.stream.write({ callId, timeoutMs: Math.min(timeoutMs, MAX_CALL_TIMEOUT_MS), request });
    });
  }

  /** Ends the stream; calls still in flight fail with CANCELLED. */
  close(): void {
    this.closed = true;
    const line = this.line;
    this.line = undefined;
    if (line) {
      fail(line, Status.CANCELLED, 'the channel was closed');
      line.stream.end();
    }
  }

  private open(): Line<Req, Res> {
    if (this.line) return this.line;
    const stream = (this.client as unknown as Record<string, () => Line<Req, Res>['stream']>)[this.method]();
    const line: Line<Req, Res> = { stream, pending: new Map() };
    const broken = (code: number, details: string) => {
      if (this.line === line) this.line = undefined;
      fail(line, code, details);
    };
    stream.on('data', (reply: ReplyEnvelope<Res>) => {
      const p = settle(line, Number(reply.callId));
      if (!p) return;
      if (reply.code === Status.OK && reply.response) p.resolve(reply.response);
      else p.reject(callError(reply.code === Status.OK ? Status.INTERNAL : reply.code, reply.details || 'empty reply', reply.errorCode));
    });
    stream.on('error', (err: ServiceError) => broken(err.code ?? Status.UNAVAILABLE, err.details || err.message));
    stream.on('end', () => {
      broken(Status.UNAVAILABLE, 'the server ended the stream (shutting down)');
      // Half-close our side too, so the HTTP/2 stream closes and the server's shutdown is not held up.
      stream.end();
    });
    this.line = line;
    return line;
  }
}

function settle<Req, Res>(line: Line<Req, Res>, callId: number): Pending<Res> | undefined {
  const p = line.pending.get(callId);
  if (!p) return undefined;
  line.pending.delete(callId);
  clearTimeout(p.timer);
  return p;
}

function fail<Req, Res>(line: Line<Req, Res>, code: number, details: string): void {
  for (const id of [...line.pending.keys()]) settle(line, id)?.reject(callError(code, details));
}
