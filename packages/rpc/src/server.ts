import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import type { ServiceMetrics } from './metrics.js';
import { MultiplexedStreams, type MultiplexedHandler, type MultiplexedOptions } from './multiplexed-server.js';
import { gateInterceptor, type Gate } from './call-gate.js';
import { InsecureBindError } from './errors/index.js';
import { reflectionDefinition } from './proto.js';
import { peerIdentities, serverCredentials, type ServerTls } from './transport-security.js';
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
  /** TLS (and, with clientCaFile, mutual TLS) on the port; plaintext when absent. */
  tls?: ServerTls;
  /** Run on every call's metadata before its handler (identity, tokens); health and reflection are not gated. */
  gates?: Gate[];
  /** Interceptors that run after the gates (they see what the gates added), e.g. per-caller limits. */
  interceptors?: grpc.ServerInterceptor[];
  /** A second, plaintext port serving only grpc.health.v1 (Kubernetes' gRPC probes cannot do TLS). */
  healthAddress?: string;
  /** Serve gRPC reflection; default: only without TLS. */
  reflection?: boolean;
  /** Allow plaintext on an address reachable from other hosts (ALLOW_INSECURE=1). */
  allowInsecure?: boolean;
}

/** Calls no gate stops: a probe must be able to ask about health, and reflection (when on) only describes. */
const UNGATED = /^\/grpc\.(health\.v1\.Health|reflection\.v1(alpha)?\.ServerReflection)\//;

/** Whether an address binds loopback only (127.0.0.0/8, ::1, localhost). */
export function isLoopback(address: string): boolean {
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
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
  private healthServer: grpc.Server | undefined;
  private readonly streams: MultiplexedStreams;
  private closing: Promise<void> | undefined;
  port = 0;
  /** The plaintext health-only port, when one was asked for. */
  healthPort = 0;

  constructor(private readonly options: ServerOptions) {
    if (!options.tls && !options.allowInsecure && !isLoopback(options.address)) throw new InsecureBindError(options.address);
    const gates = (options.gates ?? []).map((gate) =>
      gateInterceptor(
        gate,
        (path, code) => options.metrics.observe(path.slice(1), statusName(code), 0),
        (call) => peerIdentities(call),
      ),
    );
    // channelz stays on: without it grpc-js 1.14 does not track sessions, and forceShutdown() leaves them open.
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxReceiveBytes ?? 4 * 1024 * 1024,
      'grpc.max_send_message_length': options.maxSendBytes ?? 4 * 1024 * 1024,
      'grpc.max_concurrent_streams': options.maxConcurrentStreams ?? 1000,
      interceptors: [...gates, ...(options.interceptors ?? [])].map((g): grpc.ServerInterceptor => (method, call) => (UNGATED.test(method.path) ? new grpc.ServerInterceptingCall(call) : g(method, call))),
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
    // Reflection describes what this server serves: its own services and health. Off by default with TLS:
    // a secured deployment need not hand its contract to whoever connects.
    if (options.reflection ?? !options.tls) {
      new ReflectionService(reflectionDefinition(), { services: [...options.services.map((s) => s.name), 'grpc.health.v1.Health'] }).addToServer(this.server);
    }
  }

  async start(): Promise<number> {
    this.port = await bind(this.server, this.options.address, serverCredentials(this.options.tls));
    if (this.options.healthAddress) {
      this.healthServer = new grpc.Server();
      this.health.addToServer(this.healthServer);
      this.healthPort = await bind(this.healthServer, this.options.healthAddress, grpc.ServerCredentials.createInsecure());
    }
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
        this.healthServer?.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        this.healthServer?.forceShutdown();
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

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port))));
}
