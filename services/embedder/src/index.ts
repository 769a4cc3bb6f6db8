export { EmbedderWorker, resolveProfile } from './embedder-worker.js';
export { EmbedBatcher, type BatcherOptions } from './embed-batcher.js';
export { readEmbedderConfig, EMBEDDER_ENV, type EmbedderConfig } from './config.js';
