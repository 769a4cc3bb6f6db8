import { clampTimeout, DeadlineError, InvalidArgumentError, shown, UnavailableError, YocoError, getErrorMessage, withTimeout } from '@yoco/common';
import { Job, Queue, QueueEvents, type JobsOptions } from 'bullmq';
import { connectRedis, StoreKeys } from '@yoco/gallery';
import { ReplyError, type Redis } from 'ioredis';
import { JobFailedError } from './errors/index.js';
import { jobsCarrying } from './job-vectors.js';
import { bullPrefix, encodeVector, JOB_OPTIONS, QUEUE_NAME, REQUEST_ID_TTL_MS, type EnrolJobData, type EnrolJobResult, type ImportJobSubject } from './enrol-job.js';

export interface EnrolQueueOptions {
  redisUrl: string;
  /** The deployment's key prefix ('yoco:'). */
  prefix: string;
  /** How long adding a job may take before it counts as Redis being down (ms); default 2000. */
  addTimeoutMs?: number;
  /**
   * Replicas that must have the job before it is handed to the caller (Redis
   * WAIT), so a job id survives a failover; 0 (default): the primary's answer.
   */
  minReplicasAck?: number;
  /** How long that may take (ms); default 1000. */
  ackTimeoutMs?: number;
}

export interface JobStatus {
  jobId: string;
  kind: string;
  subjectId: string;
  state: string;
  consistencyToken: string;
  templateIds: string[];
  failedReason: string;
  attempts: number;
  createdMs: number;
  finishedMs: number;
  outcome: string;
}

const REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** A caller's idempotency key, checked: the same rules as a subject id. */
export function assertRequestId(id: string): void {
  if (!REQUEST_ID.test(id)) throw new InvalidArgumentError(`request_id ${shown(id)} is invalid: use 1-128 characters of A-Z a-z 0-9 . _ : @ -`, 'REQUEST_ID');
}


/**
 * The producer side of the enrolment queue (the coordinator, the CLI, tests):
 * adds jobs, waits for them, reports their status and the failed ones.
 */
export class EnrolQueue {
  readonly queue: Queue<EnrolJobData, EnrolJobResult>;
  /** Fails fast when Redis is down: nothing is queued in memory to be sent later. */
  private readonly connection: Redis;
  private readonly events: QueueEvents;
  private closing: Promise<void> | undefined;
  private readonly addTimeoutMs: number;

  constructor(private readonly options: EnrolQueueOptions) {
    this.addTimeoutMs = options.addTimeoutMs ?? 2000;
    this.connection = connectRedis(options.redisUrl, 'request');
    this.queue = new Queue<EnrolJobData, EnrolJobResult>(QUEUE_NAME, {
      connection: this.connection,
      prefix: bullPrefix(options.prefix),
      defaultJobOptions: JOB_OPTIONS,
    });
    this.queue.on('error', () => undefined);
    // Started now, not at the first wait: its first read starts at "new events only", and a job
    // finishing while that first read is being set up would otherwise go unnoticed.
    // Its own connection (QueueEvents blocks on it); a redis-sentinel:// target follows failovers like every other.
    this.events = new QueueEvents(QUEUE_NAME, { connection: connectRedis(options.redisUrl, 'worker'), prefix: bullPrefix(options.prefix) });
    this.events.on('error', () => undefined);
  }

  /**
   * WAIT on the connection that queued the job: it counts the replicas that
   * have everything this connection wrote. Too few: the job is on the primary
   * only and a failover now could lose it (and hand its id to another job),
   * so the caller is not given it as accepted.
   */
  private async replicated(job: Job<EnrolJobData, EnrolJobResult>, requestId: string): Promise<void> {
    const min = this.options.minReplicasAck ?? 0;
    if (min <= 0) return;
    const timeoutMs = this.options.ackTimeoutMs ?? 1000;
    const acked = await this.connection.wait(min, timeoutMs).catch(() => -1);
    if (acked >= min) return;
    const retry = requestId ? `retry with the same request_id (${shown(requestId)})` : 'retry with a request_id to make that safe';
    throw new UnavailableError(
      `job ${job.id} reached the primary but ${acked < 0 ? 'no' : `only ${acked} of ${min}`} replica(s) confirmed it in ${timeoutMs} ms (REDIS_MIN_REPLICAS_ACK): a failover now could lose it; ${retry}`,
      'NOT_REPLICATED',
    );
  }

  get ready(): boolean {
    return this.connection.status === 'ready';
  }

  /**
   * Queues a job. What a failure tells the caller is what is known: when
   * nothing was sent (Redis down) or Redis refused the script, nothing was
   * queued; when the add was sent but no answer came in time, the job may
   * still land (OUTCOME_UNKNOWN), and a retry with the same request_id is
   * the safe way to find out. With a request_id, BullMQ's deduplication
   * hands a retry the job the first attempt queued.
   */
  private async add(data: EnrolJobData, requestId = ''): Promise<Job<EnrolJobData, EnrolJobResult>> {
    const nothing = 'not accepted: nothing was stored or queued';
    if (requestId) assertRequestId(requestId);
    if (!this.ready) throw new UnavailableError(`Redis is unavailable (${this.connection.status}); ${nothing}`, 'STORE_UNAVAILABLE');
    const opts: JobsOptions | undefined = requestId ? { deduplication: { id: requestId, ttl: REQUEST_ID_TTL_MS } } : undefined;
    let job: Job<EnrolJobData, EnrolJobResult>;
    try {
      job = await withTimeout(this.queue.add(data.kind, data, opts), this.addTimeoutMs);
    } catch (err) {
      if (err instanceof ReplyError) throw new UnavailableError(`Redis refused the job (${getErrorMessage(err)}); ${nothing}`, 'STORE_UNAVAILABLE');
      const retry = requestId
        ? `retry with the same request_id (${shown(requestId)}) to get that job if it landed, or queue it once if it did not`
        : 'set request_id on a retry to make it safe (without one, a retry may queue the job twice: harmless for an enrolment, whose template ids are content digests, and for a removal)';
      throw new UnavailableError(`Redis did not confirm the job (${getErrorMessage(err)}): it may or may not have been queued; ${retry}`, 'OUTCOME_UNKNOWN');
    }
    await this.replicated(job, requestId);
    // Indexed by subject, so a later removal finds every job still carrying the subject's vectors.
    const carriers = data.kind === 'enrol' ? [data.subjectId] : data.kind === 'import' ? data.subjects.map((s) => s.subjectId) : [];
    if (carriers.length > 0) {
      const keys = new StoreKeys(this.options.prefix);
      await Promise.all(carriers.map((s) => this.connection.sadd(keys.jobsOf(s), String(job.id)))).catch(() => undefined);
    }
    if (requestId) {
      // A key reused for another request must not quietly return that request's job.
      const existing = await Job.fromId<EnrolJobData, EnrolJobResult>(this.queue, String(job.id)).catch(() => undefined);
      if (existing && (existing.data.kind !== data.kind || existing.data.subjectId !== data.subjectId)) {
        throw new InvalidArgumentError(`request_id ${shown(requestId)} already named job ${job.id} (${existing.data.kind} of ${existing.data.subjectId}): use a new key per request`, 'REQUEST_ID');
      }
    }
    return job;
  }

  enrol(subjectId: string, vectors: Float32Array[], replace: boolean, requestId = '', caller = ''): Promise<Job<EnrolJobData, EnrolJobResult>> {
    return this.add({ kind: 'enrol', subjectId, vectors: vectors.map(encodeVector), replace, vectorCount: vectors.length, caller }, requestId);
  }

  remove(subjectId: string, requestId = '', caller = ''): Promise<Job<EnrolJobData, EnrolJobResult>> {
    return this.add({ kind: 'remove', subjectId, caller }, requestId);
  }

  /** Many subjects in one job (the import lane); ordered with every other job by its id. */
  import(subjects: { subjectId: string; vectors: Float32Array[]; replace: boolean }[], requestId = '', caller = ''): Promise<Job<EnrolJobData, EnrolJobResult>> {
    const encoded: ImportJobSubject[] = subjects.map((s) => ({ subjectId: s.subjectId, vectors: s.vectors.map(encodeVector), replace: s.replace }));
    return this.add({ kind: 'import', subjectId: subjects[0]?.subjectId ?? '', subjects: encoded, caller }, requestId);
  }

  /**
   * Resolves with the job's result once it completes; rejects if it fails or
   * timeoutMs passes first. Listens for the job's events and, in case one is
   * missed (a reconnect, say), also checks the job itself every 250 ms.
   */
  async wait(job: Job<EnrolJobData, EnrolJobResult>, timeoutMs: number): Promise<EnrolJobResult> {
    const events = this.events;
    const controller = new AbortController();
    const poll = (async (): Promise<EnrolJobResult> => {
      for (;;) {
        await new Promise((r) => setTimeout(r, 250));
        if (controller.signal.aborted) return new Promise<never>(() => undefined);
        const id = String(job.id);
        const state = await this.queue.getJobState(id).catch(() => undefined);
        if (state !== 'completed' && state !== 'failed') continue;
        // Read after the state: a job read before it completed carries no return value yet.
        const done = await Job.fromId<EnrolJobData, EnrolJobResult>(this.queue, id).catch(() => undefined);
        if (!done) continue;
        if (state === 'failed') throw new Error(done.failedReason);
        return done.returnvalue ?? resultOf(done);
      }
    })();
    const ms = Math.max(1, clampTimeout(timeoutMs));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineError(`job ${job.id} was accepted and is still running; ask GetJob for its token`)), ms);
    });
    try {
      // BullMQ's own timeout, a little later than ours, only lets it drop its listeners.
      const result = await Promise.race([job.waitUntilFinished(events, ms + 1000), poll, deadline]);
      if (result) return result;
      const done = await Job.fromId<EnrolJobData, EnrolJobResult>(this.queue, String(job.id));
      const recorded = done && (done.returnvalue ?? resultOf(done));
      if (!recorded) throw new UnavailableError(`job ${job.id} completed but its result could not be read; ask GetJob for its token`, 'STORE_UNAVAILABLE');
      return recorded;
    } catch (err) {
      if (err instanceof YocoError) throw err;
      throw new JobFailedError(String(job.id), getErrorMessage(err));
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  }

  async status(jobId: string): Promise<JobStatus | null> {
    const job = await Job.fromId<EnrolJobData, EnrolJobResult>(this.queue, jobId);
    return job ? describe(job, await job.getState()) : null;
  }

  /** Jobs that still carry the subject's vectors (a removal's receipt expects 0). */
  jobsCarrying(subjectId: string): Promise<number> {
    return jobsCarrying(this.queue, this.connection, this.options.prefix, subjectId);
  }

  /** Who queued a job ('' without authentication), or null for an unknown job. */
  async owner(jobId: string): Promise<string | null> {
    const job = await Job.fromId<EnrolJobData, EnrolJobResult>(this.queue, jobId);
    return job ? (job.data.caller ?? '') : null;
  }

  async failed(limit = 100): Promise<JobStatus[]> {
    const jobs = await this.queue.getFailed(0, Math.max(0, limit - 1));
    return jobs.map((j) => describe(j, 'failed'));
  }

  failedCount(): Promise<number> {
    return this.queue.getFailedCount();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.events.close();
      await this.queue.close();
      this.connection.disconnect();
    })();
    return this.closing;
  }
}

/** The result a job recorded in its data before completing (enrolments and imports do), if any. */
function resultOf(job: Job<EnrolJobData, EnrolJobResult>): EnrolJobResult | undefined {
  const d = job.data;
  return d.kind === 'enrol' || d.kind === 'import' ? d.applied : undefined;
}

/** What a completed job did, in a word (an import: the count of each outcome). */
function outcomeOf(r: EnrolJobResult | undefined): string {
  if (!r) return '';
  if (r.results) {
    const counts = new Map<string, number>();
    for (const o of r.results) counts.set(o.outcome, (counts.get(o.outcome) ?? 0) + 1);
    return [...counts].map(([k, n]) => `${k} ${n}`).join(', ');
  }
  return r.notFound ? 'not_found' : r.stale ? 'stale' : 'applied';
}

function describe(job: Job<EnrolJobData, EnrolJobResult>, state: string): JobStatus {
  const r = job.returnvalue;
  return {
    outcome: state === 'completed' ? outcomeOf(r) : '',
    jobId: String(job.id),
    kind: job.data.kind,
    subjectId: job.data.kind === 'import' ? `${job.data.subjectId} (+${Math.max(0, job.data.subjects.length - 1)})` : job.data.subjectId,
    state,
    consistencyToken: r?.token ?? '',
    templateIds: r?.templateIds ?? [],
    failedReason: job.failedReason ?? '',
    attempts: job.attemptsMade,
    createdMs: job.timestamp,
    finishedMs: job.finishedOn ?? 0,
  };
}
