import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LabelledSet, readLabelledJsonl } from '@yoco/eval';
import { LocalEmbedder, PROFILES } from '@yoco/models';

const IMAGE = /\.(jpe?g|png|webp)$/i;

/** A folder per subject of images: [subject, files] sorted, so a set reads the same on every machine. */
export function imageFolders(dir: string): [string, string[]][] {
  const out: [string, string[]][] = [];
  for (const name of readdirSync(dir).sort()) {
    const sub = join(dir, name);
    if (!statSync(sub).isDirectory()) continue;
    const files = readdirSync(sub).filter((f) => IMAGE.test(f)).sort().map((f) => join(sub, f));
    if (files.length) out.push([name, files]);
  }
  if (out.length === 0) throw new Error(`${dir}: no subject folders with images (.jpg, .png, .webp) in it`);
  return out;
}

/**
 * Labelled data for train / eval / calibrate: JSON Lines of {"subject_id",
 * "vector"} (or "vectors"), or a directory with a folder of images per
 * subject, embedded here with the profile's model (the embedder's own
 * preprocessing and graph).
 */
export async function readLabelled(path: string, profile: keyof typeof PROFILES, log: (m: string) => void = () => {}): Promise<LabelledSet> {
  if (!statSync(path).isDirectory()) return readLabelledJsonl(path);
  const folders = imageFolders(path);
  const total = folders.reduce((n, [, f]) => n + f.length, 0);
  log(`embedding ${total} images of ${folders.length} subjects with ${profile}`);
  const embedder = await LocalEmbedder.create(profile);
  try {
    const samples: { subject: string; vector: Float32Array }[] = [];
    for (const [subject, files] of folders) {
      const vectors = await embedder.embed(files.map((f) => readFileSync(f))).catch((err: Error) => {
        throw new Error(`${join(path, subject)}: ${err.message}`);
      });
      vectors.forEach((vector) => samples.push({ subject, vector }));
    }
    return LabelledSet.of(samples);
  } finally {
    await embedder.close();
  }
}
