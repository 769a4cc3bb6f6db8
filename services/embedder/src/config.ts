import { availableParallelism } from 'node:os';
import { parse, readEnv, type EnvSpec } from '@yoco/common';
import { FACE_CROP_MODES, FACE_SELECTS, MODELS_DIR, type FaceCropMode, type FaceSelect } from '@yoco/models';
import { grpcAddressEnv, SERVER_SECURITY_ENV, SERVICE_ENV, type ServerSecurityConfig, type ServiceBaseConfig } from '@yoco/service';

export interface EmbedderConfig extends ServiceBaseConfig, ServerSecurityConfig {
  /** A built-in profile name (resnet50-ms3840, face-resnet128) or a profile JSON file. */
  profile: string;
  modelsDir: string;
  grpcAddress: string;
  maxBatch: number;
  maxQueueDelayMs: number;
  maxImageBytes: number;
  maxPixels: number;
  maxImagesPerCall: number;
  ortThreads: number;
  executionProviders: string[];
  faceCrop: FaceCropMode;
  faceSelect: FaceSelect;
  faceMinScore: number;
  faceDetectSize: number;
  faceConcurrency: number;
}

export const EMBEDDER_ENV: EnvSpec<EmbedderConfig> = {
  profile: { name: 'EMBEDDER_PROFILE', default: 'resnet50-ms3840', parse: parse.string, doc: 'model profile: resnet50-ms3840, face-resnet128, or a profile JSON file' },
  modelsDir: { name: 'MODELS_DIR', default: MODELS_DIR, parse: parse.string, doc: 'where generated models live (built when missing)' },
  ...SERVICE_ENV,
  ...SERVER_SECURITY_ENV,
  grpcAddress: grpcAddressEnv('127.0.0.1:50071', 'Embedder'),
  maxBatch: { name: 'EMBED_MAX_BATCH', default: 8, parse: parse.int(1, 256), doc: 'images run together at most' },
  maxQueueDelayMs: { name: 'EMBED_MAX_QUEUE_DELAY_MS', default: 5, parse: parse.int(0, 10_000), doc: 'longest an image waits to be batched' },
  maxImageBytes: { name: 'MAX_IMAGE_BYTES', default: 10 * 1024 * 1024, parse: parse.int(1, 1 << 30), doc: 'largest encoded image' },
  maxPixels: { name: 'MAX_IMAGE_PIXELS', default: 40_000_000, parse: parse.int(1, 1 << 30), doc: 'largest decoded image (width x height)' },
  maxImagesPerCall: { name: 'MAX_IMAGES_PER_CALL', default: 64, parse: parse.int(1, 4096), doc: 'images one Embed call may carry' },
  ortThreads: { name: 'ORT_THREADS', default: 0, parse: parse.int(0, 256), doc: 'ONNX Runtime intra-op threads (0 = one per core)' },
  executionProviders: { name: 'ORT_PROVIDERS', default: [], parse: parse.list, doc: 'ONNX Runtime execution providers, e.g. cuda,cpu' },
  faceCrop: { name: 'FACE_CROP', default: 'aligned', parse: parse.oneOf(...FACE_CROP_MODES), doc: "face profiles: aligned (eyes levelled, the default), box (face-api's axis-aligned crop) or none (images are already face crops)" },
  faceSelect: { name: 'FACE_SELECT', default: 'largest', parse: parse.oneOf(...FACE_SELECTS), doc: 'face profiles, several faces in an image: largest, best (most confident) or only (refuse the image)' },
  faceMinScore: { name: 'FACE_MIN_SCORE', default: 0.5, parse: parse.number(0.01, 0.99), doc: "face profiles: the detector's confidence a face needs" },
  faceConcurrency: {
    name: 'FACE_CONCURRENCY',
    default: () => availableParallelism(),
    parse: parse.int(1, 256),
    doc: 'face profiles: frames decoded and searched for faces at once (each holds width x height x 3 bytes); default one per core',
  },
  faceDetectSize: { name: 'FACE_DETECT_SIZE', default: 416, parse: parse.int(64, 1024), doc: "face profiles: the detector's input side, a multiple of 32 (larger finds smaller faces, slower)" },
};

export function readEmbedderConfig(env: NodeJS.ProcessEnv = process.env): EmbedderConfig {
  const config = readEnv(EMBEDDER_ENV, env);
  if (config.faceDetectSize % 32 !== 0) throw new Error(`FACE_DETECT_SIZE: expected a multiple of 32 (got '${config.faceDetectSize}')`);
  return config;
}
