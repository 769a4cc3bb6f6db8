import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { DIRECT_CLIENT_OPTIONS, loadProtos, makeClient, MultiplexedChannel, unary, type ClientTls, type RequestOf, type ResponseOf, type UnaryMethod, type v1 } from '@yoco/rpc';
import { MatcherError } from './errors/index.js';

export interface MatcherOptions {
  /** host:port, or several (a call that finds one UNAVAILABLE goes to the next). */
  address: string | string[];
  /** TLS: the CA of the Matcher's certificate (and, if it asks for one, this client's certificate). */
  tls?: ClientTls;
  /** The bearer token sent on every call. */
  token?: string;
  /** Deadline of a call that sets none (ms). Default 10 000. */
  timeoutMs?: number;
  /** Attempts of a call that may be retried: idempotent reads, and Enrol/Remove/Import with a request_id. Default 3. */
  attempts?: number;
  /** First backoff between attempts (ms), doubling, with jitter. Default 100. */
  backoffMs?: number;
}

type Client = v1.MatcherClient;
type Method = UnaryMethod<Client>;

/** Calls that change nothing: retried on UNAVAILABLE as they are. */
const IDEMPOTENT = new Set<Method>(['Identify', 'Verify', 'GetJob', 'GetSubject', 'ClusterStatus', 'ListJobs', 'ListAudit', 'VerifyRemoval']);
/** Writes: retried only with a request_id (one is made when the caller gave none), so a retry returns the first attempt's job. */
const KEYED = new Set<Method>(['Enrol', 'Remove', 'Import']);

/**
 * The Matcher for a gateway: every call has a deadline; UNAVAILABLE is
 * retried with backoff, on the next address when there are several, where a
 * retry cannot do harm; errors are MatcherErrors carrying the gRPC status and
 * YOCO's code; `identifyStream()` multiplexes Identify calls on one stream.
 */
export class Matcher {
  private readonly clients: Client[];
  private readonly options: Required<Omit<MatcherOptions, 'tls' | 'token'>> & Pick<MatcherOptions, 'tls' | 'token'>;
  private next = 0;
  private closed = false;

  constructor(options: MatcherOptions) {
    const addresses = Array.isArray(options.address) ? options.address : [options.address];
    if (addresses.length === 0) throw new RangeError('a Matcher needs at least one address');
    this.options = { timeoutMs: 10_000, attempts: 3, backoffMs: 100, ...options };
    if (!(this.options.attempts >= 1)) throw new RangeError(`attempts must be at least 1, got ${this.options.attempts}`);
    this.clients = addresses.map((a) => makeClient(loadProtos().Matcher, a, DIRECT_CLIENT_OPTIONS, { tls: options.tls, token: options.token }));
  }

  /** Any unary Matcher method, typed by the contract. */
  async call<M extends Method>(method: M, request: RequestOf<Client, M>, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ResponseOf<Client, M>> {
    const req = KEYED.has(method) ? withRequestId(request) : request;
    const retryable = IDEMPOTENT.has(method) || KEYED.has(method);
    const deadline = Date.now() + (options.timeoutMs ?? this.options.timeoutMs);
    return retrying(this.options, deadline, retryable, options.signal, () => unary(this.clients[this.next++ % this.clients.length], method, req, { deadline, signal: options.signal }));
  }

  identify(request: v1.IdentifyRequest, timeoutMs?: number): Promise<v1.IdentifyResponse__Output> {
    return this.call('Identify', request, { timeoutMs });
  }

  verify(request: v1.VerifyRequest, timeoutMs?: number): Promise<v1.VerifyResponse__Output> {
    return this.call('Verify', request, { timeoutMs });
  }

  /** Enrol, safe to retry: a request_id is made when none is given. */
  enrol(request: v1.EnrolRequest, timeoutMs?: number): Promise<v1.EnrolResponse__Output> {
    return this.call('Enrol', request, { timeoutMs });
  }

  remove(request: v1.RemoveRequest, timeoutMs?: number): Promise<v1.RemoveResponse__Output> {
    return this.call('Remove', request, { timeoutMs });
  }

  /**
   * Identify calls over one long-lived IdentifyStream per address: a promise
   * per call, one message each way. A broken stream fails only the calls on
   * it (they are retried on the next one, as unary ones are), and the next
   * call opens a new stream.
   */
  identifyStream(): IdentifyStream {
    return new IdentifyStream(this.clients, this.options);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.clients) c.close();
  }
}

export class IdentifyStream {
  private readonly channels: MultiplexedChannel<v1.IdentifyRequest, v1.IdentifyResponse__Output>[];
  private next = 0;

  constructor(clients: grpc.Client[], private readonly options: { timeoutMs: number; attempts: number; backoffMs: number }) {
    this.channels = clients.map((c) => new MultiplexedChannel<v1.IdentifyRequest, v1.IdentifyResponse__Output>(c, 'IdentifyStream'));
  }

  async identify(request: v1.IdentifyRequest, timeoutMs = this.options.timeoutMs): Promise<v1.IdentifyResponse__Output> {
    const deadline = Date.now() + timeoutMs;
    return retrying(this.options, deadline, true, undefined, () => this.channels[this.next++ % this.channels.length].call(request, { deadline }));
  }

  close(): void {
    for (const c of this.channels) c.close();
  }
}

/**
 * Runs `attempt` (each time on the next address) until it succeeds, or fails with anything but
 * UNAVAILABLE, or attempts or the deadline run out: jittered backoff doubling from backoffMs, at most 2 s.
 */
async function retrying<T>(o: { attempts: number; backoffMs: number }, deadline: number, retryable: boolean, signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const e = MatcherError.from(err);
      const wait = Math.min(2000, o.backoffMs * 2 ** (n - 1)) * (0.5 + Math.random() / 2);
      if (!retryable || !e.unavailable || n >= o.attempts || Date.now() + wait >= deadline || signal?.aborted) throw e;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

function withRequestId<T>(request: T): T {
  const r = request as { requestId?: string };
  return (r.requestId ? request : { ...request, requestId: randomUUID() }) as T;
}
