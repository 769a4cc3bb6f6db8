import { Metadata, status as Status, type ServerDuplexStream } from '@grpc/grpc-js';
import { CancelledError, InvalidArgumentError, ResourceExhaustedError, UnavailableError } from '@yoco/common';
import type { Logger } from 'pino';
import type { ServiceMetrics } from './metrics.js';
import { errorCodeOf, failedCall, statusName } from './status.js';

/** One call of a multiplexed stream: the request, and when its caller stops waiting. */
export interface CallContext {
  /** Epoch ms: now + the call's timeout (at most MAX_CALL_TIMEOUT_MS); undefined when it set none (see deadlineFrom). */
  callerDeadline: number | undefined;
  /** Aborted when the caller cancels the call (or the stream goes away). */
  signal: AbortSignal;
  /** Names the stream the call came on (unique in this process): work queues take their turns per lane. */
  lane: string;
  /** The stream's metadata (what the gates of the server left in it: the caller). */
  metadata: Metadata;
}

export type MultiplexedHandler<Req, Res> = (request: Req, context: CallContext) => Promise<Res>;

/** What a multiplexed stream carries each way (see ShardSearchCall / ShardSearchReply). */
export interface CallEnvelope<Req> {
  callId: number;
  timeoutMs: number;
  /** null when the caller left it out (refused). */
  request: Req | null;
  /** A message that cancels call `callId` instead of starting one. */
  cancel?: boolean;
}

export interface ReplyEnvelope<Res> {
  callId: number;
  code: number;
  details: string;
  errorCode: string;
  response?: Res;
}

export interface MultiplexedOptions {
  /** Calls one stream may have in flight; one more gets its own RESOURCE_EXHAUSTED reply. */
  maxInflightPerStream: number;
  /** Calls all streams of this server may have in flight together. */
  maxInflight: number;
}

interface OpenStream {
  id: number;
  call: ServerDuplexStream<CallEnvelope<unknown>, ReplyEnvelope<unknown>>;
  /** Calls whose handler is still running, by call id. */
  inflight: Map<number, AbortController>;
  /** The caller half-closed: end once the calls in flight are answered. */
  closing: boolean;
  ended: boolean;
  /** Reading is paused until the caller takes the replies already written. */
  paused: boolean;
}

/**
 * The server side of unary calls multiplexed over one bidirectional stream.
 * Each message is handled like a unary call (its own status, counted and
 * timed per call); replies go out as each finishes, every call gets exactly
 * one. Bounded: a stream may have maxInflightPerStream calls running, the
 * server maxInflight, and a call past either bound is answered
 * RESOURCE_EXHAUSTED at once while the stream stays open; a caller that does
 * not read its replies is not read from either (write backpressure pauses the
 * stream, and HTTP/2 flow control then holds the caller back). On drain, new
 * calls are refused with UNAVAILABLE and every stream is ended once its
 * calls are done, so a graceful shutdown is not held up by idle streams.
 */
export class MultiplexedStreams {
  private readonly open = new Set<OpenStream>();
  private draining = false;
  private running = 0;
  private streams = 0;

  constructor(
    private readonly logger: Logger,
    private readonly metrics: ServiceMetrics,
    private readonly options: MultiplexedOptions,
  ) {
    for (const [name, v] of Object.entries(options)) {
      if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`${name} must be a positive integer, got ${v}`);
    }
    if (options.maxInflightPerStream > options.maxInflight) {
      throw new RangeError(`maxInflightPerStream (${options.maxInflightPerStream}) must not exceed maxInflight (${options.maxInflight})`);
    }
  }

  /** Calls running on every stream of this server now. */
  get inflight(): number {
    return this.running;
  }

  /** Replies written but not yet taken by their callers, on every stream (what backpressure keeps small). */
  get buffered(): number {
    let n = 0;
    for (const s of this.open) n += s.call.writableLength;
    return n;
  }

  handler<Req, Res>(method: string, handle: MultiplexedHandler<Req, Res>) {
    return (call: ServerDuplexStream<CallEnvelope<Req>, ReplyEnvelope<Res>>): void => {
      const stream: OpenStream = { id: ++this.streams, call: call as unknown as OpenStream['call'], inflight: new Map(), closing: false, ended: false, paused: false };
      this.open.add(stream);
      // Headers at once: a client with transparent retries commits to this stream now instead of
      // replaying its calls on another one if the connection drops before the first reply.
      call.sendMetadata(new Metadata());
      const gone = () => {
        this.open.delete(stream);
        stream.ended = true;
        for (const c of stream.inflight.values()) c.abort();
      };
      call.on('data', (message: CallEnvelope<Req>) => this.receive(stream, method, handle, message));
      call.on('end', () => {
        stream.closing = true;
        this.endWhenIdle(stream);
      });
      call.on('error', gone);
      call.on('close', gone);
      call.on('cancelled', gone);
      if (this.draining) this.endWhenIdle(stream);
    };
  }

  /** Refuses new calls and ends each stream as soon as its calls have been answered. */
  drain(): void {
    this.draining = true;
    for (const s of this.open) this.endWhenIdle(s);
  }

  private receive<Req, Res>(stream: OpenStream, method: string, handle: MultiplexedHandler<Req, Res>, message: CallEnvelope<Req>): void {
    const callId = Number(message.callId);
    if (message.cancel) {
      stream.inflight.get(callId)?.abort();
      return;
    }
    let refusal: Error | undefined;
    if (this.draining) refusal = new UnavailableError('shutting down: call another replica');
    else if (!message.request) refusal = new InvalidArgumentError(`call ${callId} carries no request`);
    else if (stream.inflight.has(callId)) refusal = new InvalidArgumentError(`call ${callId} is already in flight on this stream: call ids must be unique among calls in flight`);
    else if (stream.inflight.size >= this.options.maxInflightPerStream) {
      refusal = new ResourceExhaustedError(`${stream.inflight.size} calls are in flight on this stream (at most ${this.options.maxInflightPerStream}): wait for replies before sending more`);
    } else if (this.running >= this.options.maxInflight) {
      refusal = new ResourceExhaustedError(`${this.running} calls are in flight on this server (at most ${this.options.maxInflight}): retry shortly, or call another replica`);
    }
    if (refusal) {
      this.reply(stream, method, process.hrtime.bigint(), callId, refusal);
      return;
    }
    void this.run(stream, method, handle, message, callId);
  }

  private async run<Req, Res>(stream: OpenStream, method: string, handle: MultiplexedHandler<Req, Res>, message: CallEnvelope<Req>, callId: number): Promise<void> {
    const started = process.hrtime.bigint();
    const controller = new AbortController();
    stream.inflight.set(callId, controller);
    this.running++;
    let answered = false;
    // A cancel is answered at once (the caller has stopped waiting); the work, if it already started, finishes unseen.
    controller.signal.addEventListener('abort', () => {
      if (answered) return;
      answered = true;
      this.reply(stream, method, started, callId, new CancelledError('cancelled by the caller'));
    }, { once: true });
    let outcome: Res | Error;
    try {
      const callerDeadline = message.timeoutMs > 0 ? Date.now() + message.timeoutMs : undefined;
      outcome = await handle(message.request as Req, { callerDeadline, signal: controller.signal, lane: `stream-${stream.id}`, metadata: stream.call.metadata });
    } catch (err) {
      outcome = err as Error;
    }
    stream.inflight.delete(callId);
    this.running--;
    if (!answered) {
      answered = true;
      this.reply(stream, method, started, callId, outcome);
    }
    if (stream.closing || this.draining) this.endWhenIdle(stream);
  }

  private reply(stream: OpenStream, method: string, started: bigint, callId: number, outcome: unknown): void {
    let reply: ReplyEnvelope<unknown>;
    if (outcome instanceof Error) {
      const e = failedCall(outcome, method, this.logger);
      reply = { callId, code: e.code, details: e.details ?? '', errorCode: errorCodeOf(e) };
    } else {
      reply = { callId, code: Status.OK, details: '', errorCode: '', response: outcome };
    }
    this.metrics.observe(method, statusName(reply.code), Number(process.hrtime.bigint() - started) / 1e9);
    if (stream.ended) return;
    if (!stream.call.write(reply) && !stream.paused) {
      // The caller is not taking its replies: stop reading its calls until it does.
      stream.paused = true;
      stream.call.pause();
      stream.call.once('drain', () => {
        stream.paused = false;
        if (!stream.ended) stream.call.resume();
      });
    }
  }

  private endWhenIdle(stream: OpenStream): void {
    if (stream.ended || stream.inflight.size > 0) return;
    stream.ended = true;
    this.open.delete(stream);
    stream.call.end();
  }
}
