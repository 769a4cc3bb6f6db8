import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FACE_FINDER_MODELS } from './face-finder.js';
import { buildFaceLandmark68Onnx, buildTinyFaceDetectorOnnx } from './face-graphs.js';
import { buildFaceRecognitionOnnx } from './face-resnet128.js';
import { faceApiModelDir, PROFILES } from './profiles.js';
import { buildResnet50Ms3840 } from './resnet50-ms3840.js';
import { readTfjsWeights } from './tfjs-weights.js';

/** The repository's models/ folder (git-ignored): generated files live there, never in git. */
export const MODELS_DIR = resolve(fileURLToPath(new URL('../../../models', import.meta.url)));

/**
 * Builds every generated model that is missing (all of them with force) and
 * writes each profile beside its model. Returns the paths written.
 */
export async function buildModels(dir = MODELS_DIR, force = false, log: (m: string) => void = () => {}): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const weights = (name: string) => readTfjsWeights(join(faceApiModelDir(), `${name}-weights_manifest.json`));
  const files: [string, () => Promise<Uint8Array>][] = [
    [PROFILES['resnet50-ms3840'].model, async () => buildResnet50Ms3840(1)],
    [PROFILES['face-resnet128'].model, async () => buildFaceRecognitionOnnx(await weights('face_recognition_model'))],
    // The face profile's finder: face-api's detector and landmark net.
    [FACE_FINDER_MODELS.detector, async () => buildTinyFaceDetectorOnnx(await weights('tiny_face_detector_model'))],
    [FACE_FINDER_MODELS.landmarks, async () => buildFaceLandmark68Onnx(await weights('face_landmark_68_model'))],
  ];
  for (const [name, build] of files) {
    const file = join(dir, name);
    if (force || !existsSync(file)) {
      const t = Date.now();
      writeFileSync(file, await build());
      log(`built ${file} in ${Date.now() - t} ms`);
      written.push(file);
    }
  }
  for (const [id, profile] of Object.entries(PROFILES)) writeFileSync(join(dir, `${id}.profile.json`), JSON.stringify(profile, null, 2) + '\n');
  return written;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const force = process.argv.includes('--force');
  buildModels(MODELS_DIR, force, console.log).then(
    (w) => console.log(w.length ? `models ready in ${MODELS_DIR}` : `models already in ${MODELS_DIR} (--force rebuilds)`),
    (err: Error) => {
      console.error(`models: ${err.message}`);
      process.exit(1);
    },
  );
}
