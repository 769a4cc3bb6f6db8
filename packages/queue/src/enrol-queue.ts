import { DeadlineError, UnavailableError, YocoError } from '@yoco/common';
import { Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { bullPrefix, encodeVector, JOB_OPTIONS, QUEUE_NAME, type EnrolJobData, type EnrolJobResult } from './enrol-job.js';

export interface EnrolQueueOptions {
  redisUrl: string;
  /** The deployment's key prefix ('yoco:'). */
  prefix: string;
  /** How long adding a job may take before it counts as Redis being down (ms); default 2000. */
  addTimeoutMs?: number;
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
}

/** A job finished but failed; carries BullMQ's reason. */
export class JobFailedError extends YocoError {
  constructor(readonly jobId: string, reason: string) {
    super('JOB_FAILED', `job ${jobId} failed: ${reason}`);
  }
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
    this.connection = new Redis(options.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    this.connection.on('error', () => undefined);
    this.queue = new Queue<EnrolJobData, EnrolJobResult>(QUEUE_NAME, {
      connection: this.connection,
      prefix: bullPrefix(options.prefix),
      defaultJobOptions: JOB_OPTIONS,
    });
    this.queue.on('error', () => undefined);
    // Started now, not at the first wait: its first read starts at "new events only", and a job
    // finishing while that first read is being set up would otherwise go unnoticed.
    this.events = new QueueEvents(QUEUE_NAME, { connection: { url: options.redisUrl } as never, prefix: bullPrefix(options.prefix) });
    this.events.on('error', () => undefined);
  }

  get ready(): boolean {
    return this.connection.status === 'ready';
  }

  private async add(data: EnrolJobData): Promise<Job<EnrolJobData, EnrolJobResult>> {
    const nothing = 'the enrolment was not accepted: nothing was stored or queued';
    if (!this.ready) throw new UnavailableError(`Redis is unavailable (${this.connection.status}); ${nothing}`, 'STORE_UNAVAILABLE');
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.queue.add(data.kind, data),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer in ${this.addTimeoutMs} ms`)), this.addTimeoutMs);
        }),
      ]);
    } catch (err) {
      // A timed-out add may still land later; the job then runs normally, and its id is unknown to the caller.
      throw new UnavailableError(`Redis is unavailable (${(err as Error).message}); ${nothing}`, 'STORE_UNAVAILABLE');
    } finally {
      clearTimeout(timer);
    }
  }

  enrol(subjectId: string, vectors: Float32Array[], replace: boolean): Promise<Job<EnrolJobData, EnrolJobResult>> {
    return this.add({ kind: 'enrol', subjectId, vectors: vectors.map(encodeVector), replace, vectorCount: vectors.length });
  }

  remove(subjectId: string): Promise<Job<EnrolJobData, EnrolJobResult>> {
    return this.add({ kind: 'remove', subjectId });
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
        const current = await Job.fromId<EnrolJobData, EnrolJobResult>(this.queue, String(job.id)).catch(() => undefined);
        const state = await current?.getState().catch(() => undefined);
        if (state === 'completed') return current!.returnvalue;
        if (state === 'failed') throw new Error(current!.failedReason);
      }
    })();
    try {
      return await Promise.race([job.waitUntilFinished(events, Math.max(1, timeoutMs)), poll]);
    } catch (err) {
      const message = (err as Error).message;
      if (/timed out/i.test(message)) throw new DeadlineError(`job ${job.id} was accepted and is still running; ask GetJob for its token`);
      throw new JobFailedError(String(job.id), message);
    } finally {
      controller.abort();
    }
  }

  async status(jobId: string): Promise<JobStatus | null> {
    const job = await Job.fromId<EnrolJobData, EnrolJobResult>(this.queue, jobId);
    return job ? describe(job, await job.getState()) : null;
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

function describe(job: Job<EnrolJobData, EnrolJobResult>, state: string): JobStatus {
  const r = job.returnvalue;
  return {
    jobId: String(job.id),
    kind: job.data.kind,
    subjectId: job.data.subjectId,
    state,
    consistencyToken: r?.token ?? '',
    templateIds: r?.templateIds ?? [],
    failedReason: job.failedReason ?? '',
    attempts: job.attemptsMade,
    createdMs: job.timestamp,
    finishedMs: job.finishedOn ?? 0,
  };
}
