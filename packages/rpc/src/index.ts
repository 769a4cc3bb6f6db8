export { loadProtos, PROTO_DIR, PROTO_FILES, LOADER_OPTIONS, SERVICE_NAMES, type YocoProtos } from './proto.js';
export { toServiceError, isServiceError, statusName, Status } from './status.js';
export { RpcServer, DEFAULT_MULTIPLEXED_LIMITS, type ServiceBinding, type ServerOptions, type UnaryHandler } from './server.js';
export { ServiceMetrics, LATENCY_BUCKETS } from './metrics.js';
export { makeClient, unary, CLIENT_OPTIONS, DIRECT_CLIENT_OPTIONS } from './client.js';
export { createLogger, type Logger } from './logger.js';
export { onShutdownSignal } from './shutdown.js';
export { MultiplexedStreams, type MultiplexedHandler, type MultiplexedOptions, type CallContext, type CallEnvelope, type ReplyEnvelope } from './multiplexed-server.js';
export { MultiplexedChannel, callError, type CallError, type MultiplexedCallOptions } from './multiplexed-channel.js';
