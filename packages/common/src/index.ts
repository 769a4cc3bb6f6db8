export * from './errors/index.js';
export { assertVectors } from './vector.js';
export { Rng } from './random.js';
