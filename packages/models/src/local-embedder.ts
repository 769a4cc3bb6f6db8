import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { buildModels, MODELS_DIR } from './build-models.js';
import { preprocess } from './preprocess.js';
import { PROFILES, type ModelProfile } from './profiles.js';

/**
 * A profile's model in this process: what tools (the photo benchmark,
 * `yoco train` on a folder of images) embed with, the same preprocessing
 * and graph the embedder service runs, without a cluster.
 */
export class LocalEmbedder {
  private constructor(readonly profile: ModelProfile, private readonly session: InferenceSession) {}

  static async create(profileId: keyof typeof PROFILES, options: { modelsDir?: string; threads?: number } = {}): Promise<LocalEmbedder> {
    const profile = PROFILES[profileId];
    if (!profile) throw new RangeError(`unknown profile '${profileId}'; expected ${Object.keys(PROFILES).join(', ')}`);
    const dir = options.modelsDir ?? MODELS_DIR;
    const file = join(dir, profile.model);
    if (!existsSync(file)) await buildModels(dir);
    const session = await InferenceSession.create(readFileSync(file), { intraOpNumThreads: options.threads ?? 0, graphOptimizationLevel: 'all' });
    return new LocalEmbedder(profile, session);
  }

  /** Vectors of the images, in order, run in batches of `batch`. */
  async embed(images: Uint8Array[], batch = 8): Promise<Float32Array[]> {
    const [h, w] = this.profile.size;
    const per = 3 * h * w;
    const out: Float32Array[] = [];
    for (let start = 0; start < images.length; start += batch) {
      const part = images.slice(start, start + batch);
      const inputs = await Promise.all(part.map((img) => preprocess(img, this.profile)));
      const input = new Float32Array(part.length * per);
      inputs.forEach((x, i) => input.set(x, i * per));
      const res = await this.session.run({ [this.profile.input]: new Tensor('float32', input, [part.length, 3, h, w]) });
      const data = res[this.profile.output].data as Float32Array;
      const dim = this.profile.dim;
      for (let i = 0; i < part.length; i++) out.push(data.slice(i * dim, (i + 1) * dim));
    }
    return out;
  }

  close(): Promise<void> {
    return this.session.release();
  }
}
