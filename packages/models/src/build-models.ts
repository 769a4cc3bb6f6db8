import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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
  const builders: Record<keyof typeof PROFILES, () => Promise<Uint8Array>> = {
    'resnet50-ms3840': async () => buildResnet50Ms3840(1),
    'face-resnet128': async () => buildFaceRecognitionOnnx(await readTfjsWeights(join(faceApiModelDir(), 'face_recognition_model-weights_manifest.json'))),
  };
  for (const [id, build] of Object.entries(builders) as [keyof typeof PROFILES, () => Promise<Uint8Array>][]) {
    const profile = PROFILES[id];
    const file = join(dir, profile.model);
    if (force || !existsSync(file)) {
      const t = Date.now();
      writeFileSync(file, await build());
      log(`built ${file} in ${Date.now() - t} ms`);
      written.push(file);
    }
    writeFileSync(join(dir, `${id}.profile.json`), JSON.stringify(profile, null, 2) + '\n');
  }
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
