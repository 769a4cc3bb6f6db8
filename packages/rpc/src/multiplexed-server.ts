import { Metadata, status as Status, type ServerDuplexStream } from '@grpc/grpc-js';
import { UnavailableError } from '@yoco/common';
import type { Logger } from 'pino';
import type { ServiceMetrics } from './metrics.js';
import { failedCall, statusName } from './status.js';

/** One call of a multiplexed stream: the request, and when its caller stops waiting. */
export interface CallContext {
  /** Epoch ms: now + the call's timeout, or a minute when it set none. */
  deadline: number;
  /** As the caller sent it; 0 when it set none (handlers with a default of their own use that). */
  timeoutMs: number;
}

export type MultiplexedHandler<Req, Res> = (request: Req, context: CallContext) => Promise<Res>;

/** What a multiplexed stream carries each way (see ShardSearchCall / ShardSearchReply). */
export interface CallEnvelope<Req> {
  callId: number;
  timeoutMs: number;
  request: Req;
}

export interface ReplyEnvelope<Res> {
  callId: number;
  code: number;
  details: string;
  errorCode: string;
  response?: Res;
}

/** A call without a timeout gets this long, as a unary call without a deadline would in practice. */
const DEFAULT_TIMEOUT_MS = 60_000;

interface OpenStream {
  call: ServerDuplexStream<CallEnvelope<unknown>, ReplyEnvelope<unknown>>;
  inflight: number;
  /** The caller half-closed: end once the calls in flight are answered. */
  closing: boolean;
  ended: boolean;
}

/**
 * The server side of unary calls multiplexed over one bidirectional stream.
 * Each message is handled like a unary call (its own status, counted and
 * timed per call); replies go out as each finishes. On drain, new calls are
 * refused with UNAVAILABLE and every stream is ended once its calls are done,
 * so a graceful shutdown is not held up by idle streams.
 */
export class MultiplexedStreams {
  private readonly open = new Set<OpenStream>();
  private draining = false;

  constructor(private readonly logger: Logger, private readonly metrics: ServiceMetrics) {}

  handler<Req, Res>(method: string, handle: MultiplexedHandler<Req, Res>) {
    return (call: ServerDuplexStream<CallEnvelope<Req>, ReplyEnvelope<Res>>): void => {
      const stream: OpenStream = { call: call as unknown as OpenStream['call'], inflight: 0, closing: false, ended: false };
      this.open.add(stream);
      // Headers at once: a client with transparent retries commits to this stream now instead of
      // replaying its calls on another one if the connection drops before the first reply.
      call.sendMetadata(new Metadata());
      const forget = () => this.open.delete(stream);
      call.on('data', (message: CallEnvelope<Req>) => void this.run(stream, method, handle, message));
      call.on('end', () => {
        stream.closing = true;
        this.endWhenIdle(stream);
      });
      call.on('error', forget);
      call.on('close', forget);
      call.on('cancelled', forget);
      if (this.draining) this.endWhenIdle(stream);
    };
  }

  /** Refuses new calls and ends each stream as soon as its calls have been answered. */
  drain(): void {
    this.draining = true;
    for (const s of this.open) this.endWhenIdle(s);
  }

  private async run<Req, Res>(stream: OpenStream, method: string, handle: MultiplexedHandler<Req, Res>, message: CallEnvelope<Req>): Promise<void> {
    const started = process.hrtime.bigint();
    const callId = message.callId;
    let reply: ReplyEnvelope<Res>;
    stream.inflight++;
    try {
      if (this.draining) throw new UnavailableError('shutting down: call another replica');
      const timeoutMs = message.timeoutMs || 0;
      const deadline = Date.now() + (timeoutMs || DEFAULT_TIMEOUT_MS);
      const response = await handle(message.request, { deadline, timeoutMs });
      reply = { callId, code: Status.OK, details: '', errorCode: '', response };
    } catch (err) {
      const e = failedCall(err, method, this.logger);
      reply = { callId, code: e.code, details: e.details ?? '', errorCode: String(e.metadata?.get('yoco-error-code')[0] ?? '') };
    }
    stream.inflight--;
    this.metrics.observe(method, statusName(reply.code), Number(process.hrtime.bigint() - started) / 1e9);
    if (!stream.ended) stream.call.write(reply);
    if (stream.closing || this.draining) this.endWhenIdle(stream);
  }

  private endWhenIdle(stream: OpenStream): void {
    if (stream.ended || stream.inflight > 0) return;
    stream.ended = true;
    this.open.delete(stream);
    stream.call.end();
  }
}
