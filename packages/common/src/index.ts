export * from './errors/index.js';
export { assertVectors, f32FromBytes } from './vector.js';
export { Rng } from './random.js';
export { readEnv, parse, splitAddress, type EnvSpec, type EnvVar } from './env-config.js';
export { freePort } from './free-port.js';
export { startRedisServer, RedisBinaryMissingError, type RedisServerHandle, type RedisServerOptions } from './redis-server.js';
export { LatencyWindow } from './latency-window.js';
export { msUntil, sleep } from './deadline.js';
export { Batcher, type BatcherOptions } from './batcher.js';
