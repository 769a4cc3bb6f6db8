import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Batcher, f32leBytes, FailedPreconditionError, InvalidArgumentError, Semaphore } from '@yoco/common';
import { buildModels, FACE_FINDER_MODELS, FaceError, FaceFinder, PROFILES, preprocess, preprocessFace, type FaceReport, type ModelProfile } from '@yoco/models';
import { bindService, loadProtos, RpcServer, SERVICE_NAMES, ServiceMetrics, type Logger, type v1 } from '@yoco/rpc';
import { assertProviders } from '@yoco/head';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { Counter, Gauge, Histogram } from 'prom-client';
import { serverSecurity } from '@yoco/service';
import { contextFrom, inSpan } from '@yoco/telemetry';
import type { EmbedderConfig } from './config.js';

/** A built-in profile by name, or a profile JSON (its model path relative to the JSON). */
export function resolveProfile(name: string, modelsDir: string): { profile: ModelProfile; modelPath: string; builtIn: boolean } {
  if (name in PROFILES) {
    const profile = PROFILES[name as keyof typeof PROFILES];
    return { profile, modelPath: resolve(modelsDir, profile.model), builtIn: true };
  }
  if (!existsSync(name)) throw new Error(`EMBEDDER_PROFILE '${name}' is neither a built-in profile (${Object.keys(PROFILES).join(', ')}) nor a file`);
  const profile = JSON.parse(readFileSync(name, 'utf8')) as ModelProfile;
  for (const key of ['id', 'model', 'input', 'output', 'size', 'mean', 'std', 'dim'] as const) {
    if (profile[key] === undefined) throw new Error(`profile ${name} lacks '${key}'`);
  }
  profile.channelOrder ??= 'rgb';
  profile.fit ??= 'squash';
  return { profile, modelPath: isAbsolute(profile.model) ? profile.model : resolve(name, '..', profile.model), builtIn: false };
}

/** The Embedder service: images in, the profile's vectors out, concurrent requests batched. */
export class EmbedderWorker {
  readonly metrics = new ServiceMetrics('embedder');
  readonly profile: ModelProfile;
  modelId = '';
  private session: InferenceSession | undefined;
  private finder: FaceFinder | undefined;
  /** Decoded frames held at once: each is width x height x 3 bytes at full size, while the crop is 150 x 150. */
  private readonly frames: Semaphore;
  private batcher: Batcher<Float32Array, Float32Array> | undefined;
  private server: RpcServer | undefined;
  private closing: Promise<void> | undefined;
  private readonly modelPath: string;
  private readonly builtIn: boolean;
  private readonly batchSize: Histogram;
  private readonly images: Counter;

  constructor(private readonly config: EmbedderConfig, private readonly logger: Logger) {
    const r = resolveProfile(config.profile, config.modelsDir);
    this.profile = r.profile;
    this.modelPath = r.modelPath;
    this.builtIn = r.builtIn;
    this.frames = new Semaphore(config.faceConcurrency);
    const registers = [this.metrics.registry];
    this.batchSize = new Histogram({ name: 'yoco_embedder_batch_size', help: 'images per model run', buckets: [1, 2, 4, 8, 16, 32, 64], registers });
    const self = this;
    this.images = new Counter({ name: 'yoco_embedder_images_total', help: 'images embedded (rate() of it: images/s)', registers });
    new Gauge({ name: 'yoco_embedder_queue_depth', help: 'images waiting for a batch', registers, collect() { this.set(self.batcher?.depth ?? 0); } });
  }

  readyFields(): Record<string, unknown> {
    return { grpcPort: this.port, healthPort: this.server?.healthPort || undefined, model: this.modelId, dim: this.profile.dim };
  }

  get port(): number {
    return this.server?.port ?? 0;
  }

  /** Batches run so far (tests compare it with the number of images). */
  get runs(): number {
    return this.batcher?.runs ?? 0;
  }

  async start(): Promise<void> {
    const findsFaces = this.profile.faces === true && this.config.faceCrop !== 'none';
    const finderMissing = findsFaces && Object.values(FACE_FINDER_MODELS).some((f) => !existsSync(resolve(this.config.modelsDir, f)));
    if (!existsSync(this.modelPath) || finderMissing) {
      if (!this.builtIn && !existsSync(this.modelPath)) throw new Error(`model ${this.modelPath} does not exist`);
      this.logger.info({ dir: this.config.modelsDir }, 'building missing models');
      await buildModels(this.config.modelsDir);
    }
    // onnxruntime-node falls back to the CPU without a word: a GPU embedder that is not on its GPU refuses to start.
    await assertProviders(this.config.executionProviders);
    const bytes = readFileSync(this.modelPath);
    this.modelId = `${this.profile.id}:${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}`;
    this.session = await InferenceSession.create(bytes, {
      intraOpNumThreads: this.config.ortThreads,
      executionProviders: [...this.config.executionProviders.filter((p) => p !== 'cpu'), 'cpu'],
      graphOptimizationLevel: 'all',
    });
    if (findsFaces) {
      this.finder = await FaceFinder.create(this.config.modelsDir, { inputSize: this.config.faceDetectSize, minScore: this.config.faceMinScore, threads: this.config.ortThreads });
    }
    this.batcher = new Batcher<Float32Array, Float32Array>((batch) => this.infer(batch), { maxBatch: this.config.maxBatch, maxDelayMs: this.config.maxQueueDelayMs, maxQueue: 1024 }, (n) => this.batchSize.observe(n));
    const { Embedder } = loadProtos();
    this.server = new RpcServer({
      address: this.config.grpcAddress,
      ...serverSecurity(this.config),
      logger: this.logger,
      metrics: this.metrics,
      // An Embed call carries a few images; the reply, their vectors.
      maxReceiveBytes: this.config.maxImageBytes * 4 + 1024 * 1024,
      services: [
        bindService<v1.EmbedderHandlers>(
          SERVICE_NAMES.Embedder,
          Embedder.service,
          {
            Embed: (req, call) =>
              inSpan('Embedder/Embed', contextFrom(String(call.metadata.get('traceparent')[0] ?? '')), 'server', async (span) => {
                span.setAttribute('yoco.images', req.images.length);
                const out = await this.embedWithFaces(req.images);
                return { embeddings: out.map(({ vector, face }) => ({ f32le: f32leBytes(vector), face: face && faceToWire(face) })), modelId: this.modelId };
              }),
            Info: async () => ({ modelId: this.modelId, dim: this.profile.dim, profile: this.profile.id }),
          },
          {},
        ),
      ],
    });
    await this.server.start();
    this.server.setServing(true);
  }

  /** Decodes, batches and embeds; a bad image fails the call, naming which one and why. */
  async embed(images: Uint8Array[]): Promise<Float32Array[]> {
    return (await this.embedWithFaces(images)).map((e) => e.vector);
  }

  /** As embed, with the face each vector describes when the profile looks for faces. */
  async embedWithFaces(images: Uint8Array[]): Promise<{ vector: Float32Array; face?: FaceReport }[]> {
    if (images.length === 0) throw new InvalidArgumentError('no images to embed', 'IMAGE');
    if (images.length > this.config.maxImagesPerCall) throw new InvalidArgumentError(`${images.length} images; at most ${this.config.maxImagesPerCall} per call`, 'IMAGE');
    const limits = { maxBytes: this.config.maxImageBytes, maxPixels: this.config.maxPixels };
    const finder = this.finder;
    const face = { crop: this.config.faceCrop === 'box' ? 'box' : 'aligned', select: this.config.faceSelect } as const;
    const where = (i: number) => (images.length > 1 ? `image ${i}: ` : '');
    const inputs = await Promise.all(
      images.map((img, i) =>
        (finder ? this.frames.run(() => preprocessFace(img, this.profile, finder, face, limits)) : preprocess(img, this.profile, limits).then((input) => ({ input, face: undefined }))).catch((err: Error) => {
          if (err instanceof FaceError) throw new FailedPreconditionError(where(i) + err.message, err.code);
          throw new InvalidArgumentError(where(i) + err.message, 'IMAGE');
        }),
      ),
    );
    const vectors = await Promise.all(inputs.map((x) => this.batcher!.submit(x.input)));
    return vectors.map((vector, i) => ({ vector, face: inputs[i].face }));
  }

  private async infer(batch: Float32Array[]): Promise<Float32Array[]> {
    const [h, w] = this.profile.size;
    const per = 3 * h * w;
    const input = new Float32Array(batch.length * per);
    batch.forEach((x, i) => input.set(x, i * per));
    const out = await this.session!.run({ [this.profile.input]: new Tensor('float32', input, [batch.length, 3, h, w]) });
    const data = out[this.profile.output].data as Float32Array;
    this.images.inc(batch.length);
    const dim = this.profile.dim;
    if (data.length !== batch.length * dim) throw new Error(`model gave ${data.length} values for ${batch.length} images of dim ${dim}`);
    return batch.map((_, i) => data.slice(i * dim, (i + 1) * dim));
  }

  stop(): Promise<void> {
    this.closing ??= (async () => {
      await this.server?.shutdown(this.config.shutdownGraceMs);
      await this.session?.release();
      await this.finder?.close();
    })();
    return this.closing;
  }
}

function faceToWire(f: FaceReport): v1.Face {
  const q = f.quality;
  return {
    box: f.box,
    score: f.score,
    landmarks: Array.from(f.landmarks),
    facesFound: f.facesFound,
    quality: { eyeDistancePx: q.eyeDistancePx, sharpness: q.sharpness, yawDeg: q.yawDeg, rollDeg: q.rollDeg },
  };
}
