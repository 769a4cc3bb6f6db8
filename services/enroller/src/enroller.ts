import { failpoint, getErrorMessage, InvalidArgumentError, sleep } from '@yoco/common';
import { assertSubjectId, compareStreamIds, connectRedis, GalleryStore, RemovalLogFile, StoreFencedError } from '@yoco/gallery';
import { bullPrefix, decodeVector, MAX_IMPORT_SUBJECTS, QUEUE_NAME, supersedeJobsOf, unindexJob, type EnrolJobData, type EnrolJobResult, type ImportJobSubject, type ImportOutcome } from '@yoco/queue';
import { ServiceMetrics, type Logger } from '@yoco/rpc';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, Gauge, Histogram } from 'prom-client';
import { redisTarget, templateSealer } from '@yoco/service';
import type { EnrollerConfig } from './config.js';
import { mkdirSync } from 'node:fs';

/** An import's subjects without their vectors (what a finished job keeps). */
function stripped(subjects: ImportJobSubject[]): ImportJobSubject[] {
  return (subjects ?? []).map((s) => ({ ...s, vectors: [] }));
}

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
  private store!: GalleryStore;
  private readonly queue: Queue<EnrolJobData, EnrolJobResult>;
  private aofTimer: NodeJS.Timeout | undefined;
  private readonly removalLog: RemovalLogFile | undefined;
  private dim = 0;
  private worker: Worker<EnrolJobData, EnrolJobResult> | undefined;
  private closing: Promise<void> | undefined;
  private readonly jobs: Counter<'kind' | 'outcome'>;
  private readonly duration: Histogram<'kind'>;

  constructor(private readonly config: EnrollerConfig, private readonly logger: Logger) {
    this.redis = connectRedis(redisTarget(config), 'worker', (err) => logger.debug({ err: err.message }, 'redis connection error'));
    if (config.removalLogDir) {
      mkdirSync(config.removalLogDir, { recursive: true });
      this.removalLog = new RemovalLogFile(config.removalLogDir);
    }
    const registers = [this.metrics.registry];
    this.jobs = new Counter({ name: 'yoco_enroller_jobs_total', help: 'jobs finished, by kind and outcome', labelNames: ['kind', 'outcome'], registers });
    this.duration = new Histogram({ name: 'yoco_enroller_job_duration_seconds', help: 'time to apply one job', labelNames: ['kind'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers });
    const counts = new Queue<EnrolJobData, EnrolJobResult>(QUEUE_NAME, { connection: this.redis, prefix: bullPrefix(config.prefix) });
    this.queue = counts;
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

  readyFields(): Record<string, unknown> {
    return { concurrency: this.config.concurrency, dim: this.dim };
  }

  /**
   * The vector width is the store's: the first shard records it (from its
   * head) before any write can be accepted. Until then there is nothing the
   * enroller could apply, so it waits for it instead of guessing.
   */
  private async storeWidth(): Promise<number> {
    const probe = new GalleryStore(this.redis, { prefix: this.config.prefix, dim: 1 });
    for (let logged = false; !this.closing; logged = true) {
      const dim = await probe.storedDim().catch(() => 0);
      if (dim > 0) return dim;
      if (!logged) this.logger.info({ prefix: this.config.prefix }, 'the store has no vector width yet (no shard has started): waiting for one');
      await sleep(500);
    }
    return 0;
  }

  async start(): Promise<void> {
    this.dim = await this.storeWidth();
    const sealer = templateSealer(this.config);
    this.store = new GalleryStore(this.redis, { prefix: this.config.prefix, dim: this.dim, sealer });
    await this.store.checkMeta();
    // Records written plain or under an older key are re-sealed under the current one, in the background.
    if (sealer) {
      void this.store.reseal().then(
        (n) => this.logger.info({ resealed: n, key: sealer.current }, 'templates sealed under the current key'),
        (err: unknown) => this.logger.error({ err: getErrorMessage(err) }, 're-sealing templates failed; it runs again at the next start'),
      );
    }
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
      if ((data.kind === 'enrol' || data.kind === 'import') && data.applied) return data.applied;
      const result = await this.applyUnfenced(data, seq).catch((err: unknown) => {
        // The store checks every vector it is given (its trust boundary); what it refuses no retry can fix.
        if (err instanceof InvalidArgumentError) refuse(getErrorMessage(err));
        throw err;
      });
      await this.replicated(data);
      // The vectors have done their work: drop them from the job so Redis keeps no second copy.
      if (data.kind === 'enrol') await job.updateData({ ...data, vectors: [], applied: result });
      if (data.kind === 'import') await job.updateData({ ...data, subjects: stripped(data.subjects), applied: result });
      if (data.kind !== 'remove') await unindexJob(this.redis, this.config.prefix, data, String(job.id));
      if (failpoint('enroller.crash-after-apply') === data.subjectId) process.exit(3);
      this.jobs.inc({ kind: data.kind, outcome: result.stale ? 'stale' : 'applied' });
      return result;
    } catch (err) {
      const final = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (final && data.kind === 'enrol') await job.updateData({ ...data, vectors: [] }).catch(() => undefined);
      if (final && data.kind === 'import') await job.updateData({ ...data, subjects: stripped(data.subjects) }).catch(() => undefined);
      // (Should that fail, a later removal of the subject still finds the job, indexed or among the failed.)
      if (final) this.jobs.inc({ kind: data.kind, outcome: 'failed' });
      throw err;
    } finally {
      this.duration.observe({ kind: data.kind }, (performance.now() - started) / 1000);
    }
  }

  /**
   * An applied write counts once REDIS_MIN_REPLICAS_ACK replicas have it
   * (WAIT on the connection that wrote it): only then is the job completed,
   * so `wait` and GetJob report nothing a failover could take back. Too few
   * in time: the job fails this attempt and is retried (applying it again is
   * a no-op where it landed), so the caller waits longer instead of being
   * told something that may not hold.
   */
  private async replicated(data: EnrolJobData): Promise<void> {
    const min = this.config.minReplicasAck;
    if (min <= 0) return;
    const acked = await this.redis.wait(min, this.config.ackTimeoutMs);
    if (acked < min) throw new Error(`${data.kind} of ${data.subjectId} applied on the primary but only ${acked} of ${min} replica(s) confirmed it in ${this.config.ackTimeoutMs} ms: retrying`);
  }

  /**
   * apply(), waiting out a backup or restore that holds the store's fence:
   * nothing was written, so the job waits (its lock kept fresh by the worker)
   * instead of spending an attempt. The fence expires if its holder dies.
   */
  private async applyUnfenced(data: EnrolJobData, seq: number): Promise<EnrolJobResult> {
    for (let logged = false; ; logged = true) {
      try {
        return await this.apply(data, seq);
      } catch (err) {
        if (!(err instanceof StoreFencedError) || this.closing) throw err;
        if (!logged) this.logger.info({ jobId: seq, subject: data.subjectId }, 'the store is fenced (a backup or restore): waiting');
        await sleep(200);
      }
    }
  }

  private async apply(data: EnrolJobData, seq: number): Promise<EnrolJobResult> {
    if (!Number.isSafeInteger(seq) || seq < 1) refuse(`job id ${seq} is not a queue sequence number`);
    try {
      assertSubjectId(data.subjectId);
    } catch (err) {
      refuse(getErrorMessage(err));
    }
    if (data.kind === 'remove') {
      const r = await this.store.removeLogged(data.subjectId, { seq });
      // Nothing to remove (the subject never had templates, or its enrolment was queued after this removal
      // and will now find the barrier): the removal stands and is complete, and is logged like every other.
      const result: EnrolJobResult = r.token
        ? { token: r.token, templateIds: [], removed: [], stale: false }
        : { token: (await this.store.streamInfo()).lastId, templateIds: [], removed: [], stale: r.stale, ...(r.stale ? {} : { notFound: true }) };
      if (r.logId && this.removalLog) await this.removalLog.append({ id: r.logId, subjectId: data.subjectId, seq, atMs: Date.now() });
      // Nothing of the subject's vectors may outlive the removal: not in a job queued before it, whatever its
      // state (waiting, delayed for a retry, failed), and not in the append-only file (a rewrite follows).
      const stripped = await supersedeJobsOf(this.queue, this.redis, this.config.prefix, data.subjectId, seq);
      if (stripped > 0) this.logger.info({ subject: data.subjectId, jobs: stripped }, 'removal: vectors dropped from earlier jobs');
      this.scheduleAofRewrite();
      return result;
    }
    if (data.kind === 'import') return this.applyImport(data.subjects, seq);
    if (data.kind !== 'enrol') refuse(`unknown job kind '${(data as { kind: string }).kind}'`);
    // A removal queued after this job took its vectors: it ends as a stale write would, writing nothing.
    if (data.superseded) return { token: (await this.store.streamInfo()).lastId, templateIds: [], removed: [], stale: true };
    const vectors = this.vectors(data.vectors);
    const r = await this.store.put(data.subjectId, vectors, { replace: data.replace, seq });
    const token = r.stale ? (await this.store.streamInfo()).lastId : r.token;
    return { token, templateIds: r.templateIds, removed: r.removed, stale: r.stale };
  }

  /** Every subject checked first (one bad entry fails the job before anything is written), then written in order. */
  private async applyImport(subjects: ImportJobSubject[], seq: number): Promise<EnrolJobResult> {
    if (!Array.isArray(subjects) || subjects.length === 0 || subjects.length > MAX_IMPORT_SUBJECTS) refuse(`an import carries 1-${MAX_IMPORT_SUBJECTS} subjects`);
    const checked = subjects.map((s, i) => {
      try {
        assertSubjectId(s.subjectId);
      } catch (err) {
        refuse(`subject ${i}: ${getErrorMessage(err)}`);
      }
      return { subjectId: s.subjectId, replace: Boolean(s.replace), superseded: Boolean(s.superseded), vectors: s.superseded ? [] : this.vectors(s.vectors, `subject ${s.subjectId}: `) };
    });
    // Distinct subjects share the job's place in the order; sent together, ioredis pipelines them.
    const puts = await Promise.all(
      checked.map((s) => (s.superseded ? Promise.resolve({ token: '', templateIds: [], removed: [], stale: false, removedBefore: true }) : this.store.put(s.subjectId, s.vectors, { replace: s.replace, seq, import: true }))),
    );
    const results: ImportOutcome[] = puts.map((r, i) => ({
      subjectId: checked[i].subjectId,
      outcome: r.removedBefore ? 'removed' : r.stale ? 'stale' : 'applied',
      templateIds: r.templateIds,
    }));
    // The newest change of the job is the one a reader must wait for.
    const tokens = puts.map((r) => r.token).filter((t) => t !== '').sort(compareStreamIds);
    return { token: tokens.at(-1) ?? (await this.store.streamInfo()).lastId, templateIds: [], removed: [], stale: false, results };
  }

  private vectors(encoded: string[], where = ''): Float32Array[] {
    if (!Array.isArray(encoded) || encoded.length === 0) refuse(`${where}the job carries no vectors`);
    // Decoded only: the store checks them as it writes them.
    return encoded.map((v, i) => {
      try {
        return decodeVector(v);
      } catch (err) {
        return refuse(`${where}vector ${i}: ${getErrorMessage(err)}`);
      }
    });
  }

  /**
   * A removal's vectors are still in Redis' append-only file (the commands that wrote them) until the file is
   * rewritten. Removals are batched: one BGREWRITEAOF at most every AOF_REWRITE_AFTER_REMOVE_MS, so a removed
   * subject's vectors leave the AOF within that time plus the rewrite itself (0 turns it off).
   */
  private scheduleAofRewrite(): void {
    const delay = this.config.aofRewriteAfterRemoveMs;
    if (delay === 0 || this.aofTimer) return;
    this.aofTimer = setTimeout(() => void this.rewriteAof(), delay);
    this.aofTimer.unref();
  }

  private async rewriteAof(): Promise<void> {
    this.aofTimer = undefined;
    try {
      const info = await this.redis.info('persistence');
      if (!/aof_enabled:1/.test(info)) return;
      // One already running started before this removal's writes were stripped: go again after it.
      if (/aof_rewrite_in_progress:1/.test(info) || /aof_rewrite_scheduled:1/.test(info)) return this.scheduleAofRewrite();
      await this.redis.bgrewriteaof();
      this.logger.info('append-only file rewrite started after removals');
    } catch (err) {
      this.logger.warn({ err: getErrorMessage(err) }, 'could not rewrite the append-only file after removals (BGREWRITEAOF refused?): removed vectors stay in it until Redis rewrites it');
      this.scheduleAofRewrite();
    }
  }

  /** Lets running jobs finish (up to the grace period), then disconnects. Idempotent. */
  stop(): Promise<void> {
    this.closing ??= (async () => {
      const timer = setTimeout(() => void this.worker?.close(true), this.config.shutdownGraceMs);
      await this.worker?.close();
      clearTimeout(timer);
      clearTimeout(this.aofTimer);
      this.redis.disconnect();
    })();
    return this.closing;
  }
}
