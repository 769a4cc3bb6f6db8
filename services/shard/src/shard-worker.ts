import type * as grpc from '@grpc/grpc-js';
import { assertVectors, Batcher, f32FromBytes, InvalidArgumentError, LatencyWindow, msUntil, sleep, UnavailableError } from '@yoco/common';
import { GallerySlice, GalleryStore, ownedSlots, SliceFollower, assertSubjectId, type SubjectMatch } from '@yoco/gallery';
import { createScorer, type Head } from '@yoco/head';
import { PROFILES } from '@yoco/models';
import { Gauge, Histogram } from 'prom-client';
import { loadProtos, RpcServer, SERVICE_NAMES, ServiceMetrics, type Logger } from '@yoco/rpc';
import { Redis } from 'ioredis';
import type { ShardConfig } from './config.js';

export const MAX_TOP_K = 1000;

interface SearchRequest {
  queries: number[];
  queriesF32: Buffer;
  topK: number;
  consistencyToken: string;
}

interface ScoreSubjectRequest {
  subjectId: string;
  query: number[];
  queryF32: Buffer;
  consistencyToken: string;
}

/** Queries from raw little-endian float32 bytes when sent that way, else from the repeated field. */
function floats(bytes: Buffer | undefined, values: number[] | undefined): Float32Array {
  return bytes && bytes.length > 0 ? f32FromBytes(bytes, 'query') : Float32Array.from(values ?? []);
}

/** A unary call's deadline as epoch ms (a minute when the caller set none). */
const deadlineOf = (call: grpc.ServerUnaryCall<unknown, unknown>) => Date.now() + Math.min(msUntil(call.getDeadline()), 60_000);

const toMatch = (m: SubjectMatch) => ({ subjectId: m.subjectId, templateId: m.templateId, score: m.score, logit: m.logit });

/**
 * One shard replica: loads the slots shard `index` of `count` owns, follows the
 * change stream, and answers Search / ScoreSubject / Status over gRPC.
 */
export class ShardWorker {
  readonly metrics = new ServiceMetrics('shard');
  private readonly latency = new LatencyWindow();
  private readonly slots: number[];
  private readonly redis: Redis;
  private readonly store: GalleryStore;
  private server: RpcServer | undefined;
  private slice: GallerySlice | undefined;
  private batcher: Batcher<{ query: Float32Array; k: number }, SubjectMatch[]> | undefined;
  private follower: SliceFollower | undefined;
  private closing: Promise<void> | undefined;
  private readonly searchQueries: Histogram;

  constructor(private readonly config: ShardConfig, private readonly head: Head, private readonly logger: Logger) {
    if (head.dim !== config.dim && !config.headPath) throw new Error(`head dim ${head.dim} does not match YOCO_DIM ${config.dim}`);
    const profile = PROFILES[config.modelId as keyof typeof PROFILES];
    if (profile && profile.dim !== head.dim) {
      throw new Error(`YOCO_MODEL_ID ${config.modelId} gives ${profile.dim}-wide vectors but the head takes ${head.dim}: use one profile for the whole cluster`);
    }
    this.slots = ownedSlots(config.index, config.count);
    this.redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: true });
    this.redis.on('error', (err) => logger.debug({ err: err.message }, 'redis connection error'));
    this.store = new GalleryStore(this.redis, { prefix: config.prefix, dim: head.dim });
    const registers = [this.metrics.registry];
    const self = this;
    new Gauge({ name: 'yoco_shard_templates', help: 'templates held', registers, collect() { this.set(self.slice?.templates ?? 0); } });
    new Gauge({ name: 'yoco_shard_subjects', help: 'subjects held', registers, collect() { this.set(self.slice?.subjects ?? 0); } });
    new Gauge({ name: 'yoco_shard_owned_slots', help: 'slots owned', registers }).set(this.slots.length);
    new Gauge({
      name: 'yoco_shard_watermark_lag_seconds',
      help: 'time between the newest change in Redis and the newest change this shard applied',
      registers,
      async collect() {
        const w = self.follower?.watermark;
        if (!w) return;
        const { lastId } = await self.store.streamInfo().catch(() => ({ lastId: w }));
        this.set(Math.max(0, (Number(lastId.split('-')[0]) - Number(w.split('-')[0])) / 1000));
      },
    });
    this.searchQueries = new Histogram({
      name: 'yoco_shard_search_batch_size',
      help: 'queries scanned together in one pass',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
  }

  get port(): number {
    return this.server?.port ?? 0;
  }

  get state(): string {
    if (this.closing) return 'DRAINING';
    return this.follower?.state === 'serving' ? 'SERVING' : 'LOADING';
  }

  /** Binds the server first (status answers LOADING at once), then loads and starts serving. */
  async start(): Promise<void> {
    const { Shard } = loadProtos();
    this.server = new RpcServer({
      address: this.config.grpcAddress,
      logger: this.logger,
      metrics: this.metrics,
      services: [
        {
          name: SERVICE_NAMES.Shard,
          definition: Shard.service,
          handlers: {
            Search: (req: SearchRequest, call) => this.search(req, deadlineOf(call)),
            ScoreSubject: (req: ScoreSubjectRequest, call) => this.scoreSubject(req, deadlineOf(call)),
            Status: async () => this.status(),
            ListTemplates: async () => {
              const { slice, follower } = this.ready();
              return { templates: slice.entries(), watermark: follower.watermark };
            },
          },
          multiplexed: {
            SearchStream: (req: SearchRequest, { deadline }) => this.search(req, deadline),
          },
        },
      ],
    });
    await this.server.start();
    if (this.config.testLoadDelayMs > 0) await sleep(this.config.testLoadDelayMs);
    await this.store.checkMeta();
    const scorer = await createScorer(this.head, {
      engine: this.config.engine,
      kernelThreads: this.config.kernelThreads || undefined,
      threads: this.config.ortThreads,
      executionProviders: this.config.executionProviders,
    });
    this.slice = new GallerySlice(scorer);
    const slice = this.slice;
    // Concurrent queries share one pass over the slice: each row block is read once for all of them.
    this.batcher = new Batcher<{ query: Float32Array; k: number }, SubjectMatch[]>(
      async (batch) => {
        const k = Math.max(...batch.map((b) => b.k));
        const all = await slice.searchMany(batch.map((b) => b.query), k);
        return all.map((matches, i) => matches.slice(0, batch[i].k));
      },
      { maxBatch: this.config.searchMaxBatch, maxDelayMs: this.config.searchMaxDelayMs },
      (size) => this.searchQueries.observe(size),
    );
    this.follower = new SliceFollower({
      store: this.store,
      slice: this.slice,
      slots: this.slots,
      blockingClient: this.redis.duplicate(),
      onEvent: (event, detail) => this.logger.warn({ event, ...detail }, 'change stream'),
    });
    const t = Date.now();
    await this.follower.load();
    this.follower.follow();
    this.server.setServing(true);
    this.logger.info({ templates: this.slice.templates, subjects: this.slice.subjects, slots: this.slots.length, ms: Date.now() - t, port: this.port }, 'shard serving');
  }

  status() {
    const p95 = this.latency.percentile(95);
    const p50 = this.latency.percentile(50);
    return {
      index: this.config.index,
      count: this.config.count,
      state: this.state,
      templates: this.slice?.templates ?? 0,
      subjects: this.slice?.subjects ?? 0,
      ownedSlots: this.slots.length,
      watermark: this.follower?.watermark ?? '',
      dim: this.head.dim,
      headId: this.head.id,
      modelId: this.config.modelId,
      engine: this.config.engine,
      p95Ms: Number.isNaN(p95) ? 0 : p95,
      p50Ms: Number.isNaN(p50) ? 0 : p50,
    };
  }

  private ready(): { slice: GallerySlice; follower: SliceFollower } {
    if (this.closing) throw new UnavailableError(`shard ${this.config.index} is shutting down`);
    if (!this.slice || !this.follower || this.follower.state !== 'serving') {
      throw new UnavailableError(`shard ${this.config.index} is loading its slots`, 'LOADING');
    }
    return { slice: this.slice, follower: this.follower };
  }

  private async consistent(follower: SliceFollower, token: string, deadline: number): Promise<void> {
    if (token) await follower.waitFor(token, Math.min(deadline - Date.now(), 60_000));
  }

  private async search(req: SearchRequest, deadline: number) {
    const { slice, follower } = this.ready();
    const started = performance.now();
    const dim = this.head.dim;
    const queries = floats(req.queriesF32, req.queries);
    const n = assertVectors(queries, dim, 'query');
    const k = req.topK || 10;
    if (k > MAX_TOP_K) throw new InvalidArgumentError(`top_k ${k} is above ${MAX_TOP_K}`, 'TOP_K');
    await this.consistent(follower, req.consistencyToken, deadline);
    if (this.config.testDelayMs > 0) await sleep(this.config.testDelayMs);
    const results = await Promise.all(
      Array.from({ length: n }, async (_, i) => ({ matches: (await this.batcher!.submit({ query: queries.subarray(i * dim, (i + 1) * dim), k })).map(toMatch) })),
    );
    const searchMs = performance.now() - started;
    this.latency.add(searchMs);
    return { results, shardIndex: this.config.index, templates: slice.templates, watermark: follower.watermark, searchMs };
  }

  private async scoreSubject(req: ScoreSubjectRequest, deadline: number) {
    const { slice, follower } = this.ready();
    assertSubjectId(req.subjectId);
    const query = floats(req.queryF32, req.query);
    assertVectors(query, this.head.dim, 'query', 1);
    await this.consistent(follower, req.consistencyToken, deadline);
    const best = await slice.scoreSubject(req.subjectId, query);
    return best ? { found: true, best: toMatch(best) } : { found: false };
  }

  /** Stops taking calls, drains in-flight ones, then releases everything. Idempotent. */
  stop(): Promise<void> {
    this.closing ??= (async () => {
      await this.server?.shutdown(this.config.shutdownGraceMs);
      await this.follower?.stop();
      await this.slice?.scorer.close();
      this.redis.disconnect();
    })();
    return this.closing;
  }
}
