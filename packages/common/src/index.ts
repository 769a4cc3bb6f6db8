export * from './errors/index.js';
export { assertVectors, decodeVectors, f32FromBytes, f32leBytes, vectorFromWire, norm, shown, MAX_VECTOR_VALUE } from './vector.js';
export { Rng } from './random.js';
export { readEnv, checkEnv, parse, splitAddress, type EnvSpec, type EnvVar } from './env-config.js';
export { freePort } from './free-port.js';
export { LatencyWindow } from './latency-window.js';
export { msUntil, sleep, clampTimeout, deadlineFrom, DEFAULT_CALL_TIMEOUT_MS, MAX_CALL_TIMEOUT_MS } from './deadline.js';
export { Batcher, type BatcherOptions, type SubmitOptions, type DropReason } from './batcher.js';
export { failpoint, failpointMs, checkFailpoints, FAILPOINTS, type FailpointName } from './failpoints.js';
