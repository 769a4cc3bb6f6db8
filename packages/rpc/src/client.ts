import * as grpc from '@grpc/grpc-js';

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

export function makeClient<C extends grpc.Client>(ctor: grpc.ServiceClientConstructor, address: string, options: grpc.ChannelOptions = {}): C {
  return new ctor(address, grpc.credentials.createInsecure(), { ...CLIENT_OPTIONS, ...options }) as unknown as C;
}

/** Calls a unary method; resolves with the response or rejects with the ServiceError. */
export function unary<Req, Res>(
  client: grpc.Client,
  method: string,
  request: Req,
  options: { deadline?: grpc.Deadline; signal?: AbortSignal; metadata?: grpc.Metadata } = {},
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method];
    if (typeof fn !== 'function') {
      reject(new Error(`no method ${method}`));
      return;
    }
    const call: grpc.ClientUnaryCall = fn.call(
      client,
      request,
      options.metadata ?? new grpc.Metadata(),
      { deadline: options.deadline },
      (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)),
    );
    options.signal?.addEventListener('abort', () => call.cancel(), { once: true });
  });
}
