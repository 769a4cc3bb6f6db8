export { readTfjsWeights, type NamedWeight } from './tfjs-weights.js';
export { buildFaceRecognitionOnnx } from './face-resnet128.js';
export { buildResnet50Ms3840 } from './resnet50-ms3840.js';
export { hwioToOihw } from './graph-parts.js';
export { PROFILES, faceApiModelDir, type ModelProfile } from './profiles.js';
export { buildModels, MODELS_DIR } from './build-models.js';
export { preprocess, DEFAULT_IMAGE_LIMITS, type ImageLimits } from './preprocess.js';
export { ImageError } from './errors/index.js';
export { LocalEmbedder } from './local-embedder.js';
