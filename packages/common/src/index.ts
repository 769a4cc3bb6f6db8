export * from './errors/index.js';
export { assertVectors } from './vector.js';
export { Rng } from './random.js';
export { readEnv, parse, type EnvSpec, type EnvVar } from './env-config.js';
