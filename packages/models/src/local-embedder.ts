import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { buildModels, MODELS_DIR } from './build-models.js';
import type { FaceCropMode } from './face-crop.js';
import { FaceFinder } from './face-finder.js';
import { preprocessFace, type FaceOptions } from './face-preprocess.js';
import { preprocess } from './preprocess.js';
import { PROFILES, type ModelProfile } from './profiles.js';

/**
 * A profile's model in this process: what tools (the photo benchmark,
 * `yoco train` on a folder of images) embed with, the same preprocessing
 * and graph the embedder service runs, without a cluster.
 */
export class LocalEmbedder {
  private constructor(
    readonly profile: ModelProfile,
    private readonly session: InferenceSession,
    private readonly faces?: { finder: FaceFinder; options: FaceOptions },
  ) {}

  /** `faceCrop`: for face profiles, as the embedder's FACE_CROP (aligned by default; none takes images as face crops). */
  static async create(profileId: keyof typeof PROFILES, options: { modelsDir?: string; threads?: number; faceCrop?: FaceCropMode } = {}): Promise<LocalEmbedder> {
    const profile = PROFILES[profileId];
    if (!profile) throw new RangeError(`unknown profile '${profileId}'; expected ${Object.keys(PROFILES).join(', ')}`);
    const dir = options.modelsDir ?? MODELS_DIR;
    const file = join(dir, profile.model);
    if (!existsSync(file)) await buildModels(dir);
    const session = await InferenceSession.create(readFileSync(file), { intraOpNumThreads: options.threads ?? 0, graphOptimizationLevel: 'all' });
    const crop = options.faceCrop ?? 'aligned';
    if (!profile.faces || crop === 'none') return new LocalEmbedder(profile, session);
    const finder = await FaceFinder.create(dir, { threads: options.threads });
    return new LocalEmbedder(profile, session, { finder, options: { crop, select: 'largest' } });
  }

  /** Vectors of the images, in order, run in batches of `batch`. */
  async embed(images: Uint8Array[], batch = 8): Promise<Float32Array[]> {
    const [h, w] = this.profile.size;
    const per = 3 * h * w;
    const out: Float32Array[] = [];
    for (let start = 0; start < images.length; start += batch) {
      const part = images.slice(start, start + batch);
      const faces = this.faces;
      const inputs = await Promise.all(part.map(async (img) => (faces ? (await preprocessFace(img, this.profile, faces.finder, faces.options)).input : preprocess(img, this.profile))));
      const input = new Float32Array(part.length * per);
      inputs.forEach((x, i) => input.set(x, i * per));
      const res = await this.session.run({ [this.profile.input]: new Tensor('float32', input, [part.length, 3, h, w]) });
      const data = res[this.profile.output].data as Float32Array;
      const dim = this.profile.dim;
      for (let i = 0; i < part.length; i++) out.push(data.slice(i * dim, (i + 1) * dim));
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
    await this.faces?.finder.close();
  }
}
