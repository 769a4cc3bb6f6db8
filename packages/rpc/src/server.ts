import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import type { ServiceMetrics } from './metrics.js';
import { MultiplexedStreams, type MultiplexedHandler, type MultiplexedOptions } from './multiplexed-server.js';
import { reflectionDefinition } from './proto.js';
import { failedCall, statusName } from './status.js';

export type UnaryHandler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>;

// Keys of a generated XHandlers interface without its inherited index signature (which would swallow them in keyof).
type MethodKeys<H> = keyof { [K in keyof H as string extends K ? never : number extends K ? never : K]: H[K] };

/**
 * The unary methods of a generated `XHandlers` interface (v1.ShardHandlers,
 * ...), written as async functions: a method added to the proto is a compile
 * error until it is implemented, and each takes and returns its own messages.
 */
export type UnaryHandlers<H> = {
  [K in MethodKeys<H> as H[K] extends grpc.handleUnaryCall<never, unknown> ? K : never]: H[K] extends grpc.handleUnaryCall<infer Req, infer Res>
    ? UnaryHandler<Req, Res>
    : never;
};

/** Its bidirectional methods, each multiplexing calls of `request` answered with `response` (see MultiplexedStreams). */
export type MultiplexedHandlers<H> = {
  [K in MethodKeys<H> as H[K] extends grpc.handleBidiStreamingCall<never, unknown> ? K : never]: H[K] extends grpc.handleBidiStreamingCall<{ request?: infer Req | null }, { response?: infer Res | null }>
    ? MultiplexedHandler<Req, Res>
    : never;
};

/** A service as RpcServer takes it; built by bindService, which checks the handlers against the generated types. */
export interface ServiceBinding {
  /** Fully qualified name, e.g. yoco.v1.Shard (health reports under it). */
  name: string;
  definition: grpc.ServiceDefinition;
  // The untyped edge: a server holds services of different types side by side.
  handlers: Record<string, UnaryHandler<never, unknown>>;
  multiplexed: Record<string, MultiplexedHandler<never, unknown>>;
}

/** Binds typed handlers (H: the generated XHandlers interface) to a service definition. */
export function bindService<H>(name: string, definition: grpc.ServiceDefinition, handlers: UnaryHandlers<H>, multiplexed: MultiplexedHandlers<H>): ServiceBinding {
  return {
    name,
    definition,
    handlers: handlers as Record<string, UnaryHandler<never, unknown>>,
    multiplexed: multiplexed as Record<string, MultiplexedHandler<never, unknown>>,
  };
}

export interface ServerOptions {
  /** host:port to bind; port 0 picks a free one. */
  address: string;
  services: ServiceBinding[];
  logger: Logger;
  metrics: ServiceMetrics;
  /** Largest message accepted (bytes): what the biggest request of these services needs. Default 4 MiB. */
  maxReceiveBytes?: number;
  /** Largest message sent (bytes): what the biggest reply needs. Default 4 MiB. */
  maxSendBytes?: number;
  /** Bounds of the multiplexed methods (calls in flight per stream and in all). */
  multiplexedLimits?: Partial<MultiplexedOptions>;
  /** HTTP/2 streams (unary calls, open multiplexed streams) one connection may have at once; default 1000. */
  maxConcurrentStreams?: number;
}

/** Defaults for the multiplexed methods: one stream can never take more than a quarter of the server. */
export const DEFAULT_MULTIPLEXED_LIMITS: MultiplexedOptions = { maxInflightPerStream: 256, maxInflight: 1024 };

/**
 * A gRPC server with grpc.health.v1 and reflection, every handler wrapped so
 * that failures leave as gRPC statuses and every call is counted and timed.
 */
export class RpcServer {
  readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly server: grpc.Server;
  private readonly streams: MultiplexedStreams;
  private closing: Promise<void> | undefined;
  port = 0;

  constructor(private readonly options: ServerOptions) {
    // channelz stays on: without it grpc-js 1.14 does not track sessions, and forceShutdown() leaves them open.
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxReceiveBytes ?? 4 * 1024 * 1024,
      'grpc.max_send_message_length': options.maxSendBytes ?? 4 * 1024 * 1024,
      'grpc.max_concurrent_streams': options.maxConcurrentStreams ?? 1000,
    });
    this.streams = new MultiplexedStreams(options.logger, options.metrics, { ...DEFAULT_MULTIPLEXED_LIMITS, ...options.multiplexedLimits });
    for (const s of options.services) {
      const impl: grpc.UntypedServiceImplementation = {};
      for (const [method, handler] of Object.entries(s.handlers)) impl[method] = this.wrap(`${s.name}/${method}`, handler);
      for (const [method, handler] of Object.entries(s.multiplexed)) impl[method] = this.streams.handler(`${s.name}/${method}`, handler);
      this.server.addService(s.definition, impl);
      this.health.setStatus(s.name, 'NOT_SERVING');
    }
    this.health.addToServer(this.server);
    // Reflection describes what this server serves: its own services and health.
    new ReflectionService(reflectionDefinition(), { services: [...options.services.map((s) => s.name), 'grpc.health.v1.Health'] }).addToServer(this.server);
  }

  async start(): Promise<number> {
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(this.options.address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
    });
    return this.port;
  }

  /** Calls running on the multiplexed streams now (for metrics). */
  get multiplexedInflight(): number {
    return this.streams.inflight;
  }

  /** Replies the multiplexed streams hold for callers that have not taken them yet. */
  get multiplexedBuffered(): number {
    return this.streams.buffered;
  }

  /** Marks the server and every service SERVING or NOT_SERVING for health checks. */
  setServing(serving: boolean): void {
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', status);
    for (const s of this.options.services) this.health.setStatus(s.name, status);
  }

  /** Stops accepting calls, lets in-flight ones finish (up to graceMs), then closes. Idempotent. */
  shutdown(graceMs = 10_000): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.setServing(false);
      this.streams.drain();
      const timer = setTimeout(() => {
        this.options.logger.warn({ graceMs }, 'calls still running after the grace period; forcing shutdown');
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.closing;
  }

  private wrap(method: string, handler: UnaryHandler<never, unknown>): grpc.handleUnaryCall<unknown, unknown> {
    const { logger, metrics } = this.options;
    return (call, callback) => {
      const started = process.hrtime.bigint();
      const done = (code: number) => metrics.observe(method, statusName(code), Number(process.hrtime.bigint() - started) / 1e9);
      // The request is the type bindService checked the handler against.
      handler(call.request as never, call as never).then(
        (response) => {
          done(grpc.status.OK);
          callback(null, response);
        },
        (err: unknown) => {
          const e = failedCall(err, method, logger);
          done(e.code);
          callback(e as grpc.ServiceError);
        },
      );
    };
  }
}
