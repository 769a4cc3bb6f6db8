import { assertVectors, YocoError } from '@yoco/common';
import { assertSubjectId, GalleryStore } from '@yoco/gallery';
import { bullPrefix, decodeVector, QUEUE_NAME, type EnrolJobData, type EnrolJobResult } from '@yoco/queue';
import { ServiceMetrics, type Logger } from '@yoco/rpc';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { EnrollerConfig } from './config.js';

/** Data no retry can fix: the job fails at once with this reason. */
function refuse(reason: string): never {
  throw new UnrecoverableError(reason);
}

/**
 * The BullMQ worker: applies each job through the gallery store in one atomic
 * Redis step (templates + change-stream entry). Jobs carry their queue order
 * (the job id) so retried or reordered jobs end as if applied in order, and
 * template ids come from content, so a retry never duplicates.
 */
export class Enroller {
  readonly metrics = new ServiceMetrics('enroller');
  private readonly redis: Redis;
  private readonly store: GalleryStore;
  private worker: Worker<EnrolJobData, EnrolJobResult> | undefined;
  private closing: Promise<void> | undefined;
  private readonly jobs: Counter<'kind' | 'outcome'>;
  private readonly duration: Histogram<'kind'>;

  constructor(private readonly config: EnrollerConfig, private readonly dim: number, private readonly logger: Logger) {
    this.redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    this.redis.on('error', (err) => logger.debug({ err: err.message }, 'redis connection error'));
    this.store = new GalleryStore(this.redis, { prefix: config.prefix, dim });
    const registers = [this.metrics.registry];
    this.jobs = new Counter({ name: 'yoco_enroller_jobs_total', help: 'jobs finished, by kind and outcome', labelNames: ['kind', 'outcome'], registers });
    this.duration = new Histogram({ name: 'yoco_enroller_job_duration_seconds', help: 'time to apply one job', labelNames: ['kind'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers });
    const counts = new Queue(QUEUE_NAME, { connection: this.redis, prefix: bullPrefix(config.prefix) });
    new Gauge({
      name: 'yoco_enroller_queue_depth',
      help: 'jobs by state (waiting, delayed, active, failed)',
      labelNames: ['state'],
      registers,
      async collect() {
        const c = await counts.getJobCounts('wait', 'delayed', 'active', 'failed').catch(() => ({}) as Record<string, number>);
        for (const [state, n] of Object.entries(c)) this.set({ state }, n);
      },
    });
  }

  async start(): Promise<void> {
    await this.store.checkMeta();
    this.worker = new Worker<EnrolJobData, EnrolJobResult>(QUEUE_NAME, (job) => this.process(job), {
      connection: this.redis.duplicate(),
      prefix: bullPrefix(this.config.prefix),
      concurrency: this.config.concurrency,
      // A job's lock lapses this long after its worker dies; the stalled check then hands it to another.
      lockDuration: 5000,
      stalledInterval: 2500,
      maxStalledCount: 10,
    });
    this.worker.on('error', (err) => this.logger.warn({ err: err.message }, 'worker error'));
    this.worker.on('failed', (job, err) => this.logger.warn({ jobId: job?.id, subject: job?.data.subjectId, err: err.message, attempts: job?.attemptsMade }, 'job failed'));
    await this.worker.waitUntilReady();
  }

  private async process(job: Job<EnrolJobData, EnrolJobResult>): Promise<EnrolJobResult> {
    const started = performance.now();
    const data = job.data;
    const seq = Number(job.id);
    try {
      if (data.kind === 'enrol' && data.applied) return data.applied;
      const result = await this.apply(data, seq);
      // The vectors have done their work: drop them from the job so Redis keeps no second copy.
      if (data.kind === 'enrol') await job.updateData({ ...data, vectors: [], applied: result });
      if (this.config.testCrashAfterApply && this.config.testCrashAfterApply === data.subjectId) process.exit(3);
      this.jobs.inc({ kind: data.kind, outcome: result.stale ? 'stale' : 'applied' });
      return result;
    } catch (err) {
      const final = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (final && data.kind === 'enrol') await job.updateData({ ...data, vectors: [] }).catch(() => undefined);
      if (final) this.jobs.inc({ kind: data.kind, outcome: 'failed' });
      throw err;
    } finally {
      this.duration.observe({ kind: data.kind }, (performance.now() - started) / 1000);
    }
  }

  private async apply(data: EnrolJobData, seq: number): Promise<EnrolJobResult> {
    if (!Number.isSafeInteger(seq) || seq < 1) refuse(`job id ${seq} is not a queue sequence number`);
    try {
      assertSubjectId(data.subjectId);
    } catch (err) {
      refuse((err as Error).message);
    }
    if (data.kind === 'remove') {
      let token: string;
      try {
        token = await this.store.remove(data.subjectId, { seq });
      } catch (err) {
        if (err instanceof YocoError && err.code === 'SUBJECT_NOT_FOUND') refuse(err.message);
        throw err;
      }
      return { token: token || (await this.store.streamInfo()).lastId, templateIds: [], removed: [], stale: token === '' };
    }
    if (data.kind !== 'enrol') refuse(`unknown job kind '${(data as { kind: string }).kind}'`);
    if (!Array.isArray(data.vectors) || data.vectors.length === 0) refuse('the job carries no vectors');
    const vectors = data.vectors.map((v, i) => {
      try {
        const vector = decodeVector(v);
        assertVectors(vector, this.dim, `vector ${i}`, 1);
        return vector;
      } catch (err) {
        return refuse((err as Error).message);
      }
    });
    const r = await this.store.put(data.subjectId, vectors, { replace: data.replace, seq });
    const token = r.stale ? (await this.store.streamInfo()).lastId : r.token;
    return { token, templateIds: r.templateIds, removed: r.removed, stale: r.stale };
  }

  /** Lets running jobs finish (up to the grace period), then disconnects. Idempotent. */
  stop(): Promise<void> {
    this.closing ??= (async () => {
      const timer = setTimeout(() => void this.worker?.close(true), this.config.shutdownGraceMs);
      await this.worker?.close();
      clearTimeout(timer);
      this.redis.disconnect();
    })();
    return this.closing;
  }
}
