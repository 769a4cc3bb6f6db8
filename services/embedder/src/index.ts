export { EmbedderWorker, resolveProfile } from './embedder-worker.js';
export { readEmbedderConfig, EMBEDDER_ENV, type EmbedderConfig } from './config.js';
