import * as grpc from '@grpc/grpc-js';
import { channelCredentials, type ClientTls } from './transport-security.js';

/** What a caller of the Matcher needs: Enrol carries images (16 MiB in all at most); replies are small. */
export const CLIENT_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  'grpc.max_send_message_length': 16 * 1024 * 1024,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  // Fail fast when a replica is gone instead of waiting out the reconnect backoff.
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2000,
};

/**
 * For callers that fail over themselves (the coordinator's shard calls) or
 * care about every fraction of a millisecond: no transparent retries (grpc-js
 * then buffers each call and takes extra turns of the event loop: 0.3-0.5 ms
 * of a 0.7-1.1 ms call between two processes here) and no channelz
 * bookkeeping (nothing serves channelz).
 */
export const DIRECT_CLIENT_OPTIONS: grpc.ChannelOptions = {
  'grpc.enable_retries': 0,
  'grpc.enable_channelz': 0,
};

/** A generated client constructor (loadProtos().Matcher, ...): builds clients of type C. */
export type ClientConstructor<C extends grpc.Client> = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => C;

/** How a client proves itself and checks the server: TLS from files (mutual with a certificate), and a bearer token. */
export interface ClientSecurity {
  tls?: ClientTls;
  /** Sent as `authorization: Bearer <token>` on every call (the Matcher checks it). */
  token?: string;
}

export function makeClient<C extends grpc.Client>(ctor: ClientConstructor<C>, address: string, options: grpc.ChannelOptions = {}, security: ClientSecurity = {}): C {
  const interceptors = security.token ? [bearer(security.token)] : [];
  return new ctor(address, channelCredentials(security.tls), { ...CLIENT_OPTIONS, ...options, interceptors });
}

/** Adds the token to each call's metadata (an interceptor, so it works on plaintext loopback channels too). */
function bearer(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

// A generated client declares each unary method with four overloads; the last
// one, (argument, callback), is the one conditional types see.
type UnaryShape<Req, Res> = (argument: Req, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;

// A streaming method's last overload is (options?) => stream: one parameter, not two.
type IsUnary<F> = F extends UnaryShape<never, unknown> ? (F extends (...args: infer P) => unknown ? (P['length'] extends 2 ? true : false) : false) : false;

/** The unary methods of a generated client (the PascalCase names, as in the proto). */
export type UnaryMethod<C> = {
  [K in keyof C]: K extends string ? (K extends Capitalize<K> ? (IsUnary<C[K]> extends true ? K : never) : never) : never;
}[keyof C];
export type RequestOf<C, M extends keyof C> = C[M] extends UnaryShape<infer Req, unknown> ? Req : never;
export type ResponseOf<C, M extends keyof C> = C[M] extends (argument: never, callback: grpc.requestCallback<infer Res>) => grpc.ClientUnaryCall ? Res : never;

export interface UnaryOptions {
  deadline?: grpc.Deadline;
  signal?: AbortSignal;
  metadata?: grpc.Metadata;
}

/** Calls a unary method by its proto name; resolves with the response or rejects with the ServiceError. */
export function unary<C extends grpc.Client, M extends UnaryMethod<C>>(client: C, method: M, request: RequestOf<C, M>, options: UnaryOptions = {}): Promise<ResponseOf<C, M>> {
  type Res = ResponseOf<C, M>;
  return new Promise<Res>((resolve, reject) => {
    // The generated client's methods are overloaded; this is the (argument, metadata, options, callback) one.
    const fn = client[method] as unknown as (req: RequestOf<C, M>, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;
    if (typeof fn !== 'function') {
      reject(new Error(`no method ${String(method)}`));
      return;
    }
    const call: grpc.ClientUnaryCall = fn.call(
      client,
      request,
      options.metadata ?? new grpc.Metadata(),
      { deadline: options.deadline },
      (err, res) => (err ? reject(err) : resolve(res as Res)),
    );
    options.signal?.addEventListener('abort', () => call.cancel(), { once: true });
  });
}
