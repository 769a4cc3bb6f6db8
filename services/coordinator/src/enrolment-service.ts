import { AlreadyExistsError, FailedPreconditionError, withTimeout, f32leBytes, getErrorMessage, InvalidArgumentError, NotFoundError, shown, UnavailableError, YocoError } from '@yoco/common';
import { assertSubjectId, compareStreamIds, isStreamId, shardOfSlot, slotOf, templateIdOf } from '@yoco/gallery';
import { unary } from '@yoco/rpc';
import { MAX_IMPORT_SUBJECTS, type EnrolQueue, type ImportOutcome } from '@yoco/queue';
import type { CoordinatorConfig } from './config.js';
import { callerOf } from './caller-auth.js';
import { faceGateProblem } from './face-gate.js';
import type { ProbeReader } from './probe-reader.js';
import type { v1 } from '@yoco/rpc';
import type { ShardDirectory } from './shard-directory.js';
import type { StoreReader } from './store-reader.js';
import { callDeadline, type Call } from './unary-call.js';

/** Templates one Enrol may carry (and vectors one Import subject may). */
export const MAX_PROBES = 64;

/** How long the duplicate check waits for the stream's head before it goes on without it (warn) or refuses (refuse). */
const HEAD_TIMEOUT_MS = 500;

/** How the duplicate check reads the gallery. */
export interface DuplicateRead {
  consistencyToken: string;
  allowPartial: boolean;
}

/** A job's id as Enrol, Remove or Import returned it. */
const JOB_ID = /^\d{1,20}$/;

/**
 * The write path: Enrol, Remove and Import validate everything and queue one
 * job each (the enroller applies it); GetJob and ListJobs read the queue.
 */
export class EnrolmentService {
  private storeDim: number | undefined;

  constructor(
    private readonly config: CoordinatorConfig,
    private readonly directory: ShardDirectory,
    private readonly probes: ProbeReader,
    private readonly queue: EnrolQueue,
    private readonly store: StoreReader,
    /** Searches the gallery for one vector (the duplicate check): its matches, accepted marked. */
    private readonly search?: (vector: Float32Array, deadline: number, read: DuplicateRead) => Promise<v1.Match[]>,
  ) {}

  /** Validates everything, then queues the job; with `wait`, returns once it is applied (within the deadline). */
  async enrol(req: v1.EnrolRequest__Output, call: Call): Promise<v1.EnrolResponse> {
    assertSubjectId(req.subjectId);
    const dim = await this.writeDim();
    const probes = req.probes;
    if (probes.length === 0) throw new InvalidArgumentError('probes is empty: enrol at least one image or vector', 'PROBE');
    if (probes.length > MAX_PROBES) throw new InvalidArgumentError(`${probes.length} probes; at most ${MAX_PROBES} per Enrol`, 'PROBE');
    const { vectors, faces } = await this.probes.read(probes, dim, callDeadline(call.getDeadline(), this.config.defaultTimeoutMs));
    faces.forEach((face, i) => {
      const problem = face && faceGateProblem(face, this.config.enrolFaceGate);
      if (problem) throw new FailedPreconditionError(`${probes.length > 1 ? `probe ${i}: ` : ''}${problem}; nothing was queued`, 'FACE_QUALITY');
    });
    const subjectId = req.subjectId;
    const duplicates = await this.duplicatesOf(subjectId, vectors, callDeadline(call.getDeadline(), this.config.defaultTimeoutMs));
    const job = await this.queue.enrol(subjectId, vectors, req.replace, req.requestId, callerOf(call.metadata)?.sub);
    const templateIds = [...new Set(vectors.map((v) => templateIdOf(subjectId, v)))];
    const faceList = faces.some((f) => f) ? faces.map((f) => f ?? {}) : [];
    if (!req.wait) return { jobId: String(job.id), consistencyToken: '', templateIds, duplicates, faces: faceList };
    const result = await this.waitFor(job, call);
    return { jobId: String(job.id), consistencyToken: result.token, templateIds, duplicates, faces: faceList };
  }

  /**
   * DUPLICATE_CHECK: each new template searched against the gallery first. A
   * probe accepted as another subject is reported (warn) or refuses the
   * enrolment (refuse, ALREADY_EXISTS), so nobody enrols a face already held
   * under another identity unnoticed.
   */
  private async duplicatesOf(subjectId: string, vectors: Float32Array[], deadline: number): Promise<v1.Match[]> {
    const mode = this.config.duplicateCheck;
    if (mode === 'off' || !this.search) return [];
    const strict = mode === 'refuse';
    // Read at the stream's head: a subject enrolled (and acknowledged) a moment ago, on a shard that has not
    // applied it yet, would otherwise go unseen. Refuse cannot vouch for a partial answer; warn takes one.
    // Bounded: a Redis that holds the connection without answering (frozen, overloaded) must not hold the
    // enrolment past its deadline here; the queue then says what it knows.
    const consistencyToken = await withTimeout(this.store.streamHead(), HEAD_TIMEOUT_MS, `Redis did not answer in ${HEAD_TIMEOUT_MS} ms`).catch((err: unknown) => {
      if (strict) throw new UnavailableError(`the duplicate check could not run (${getErrorMessage(err)}); nothing was queued`, 'DUPLICATE_CHECK');
      return '';
    });
    const read = { consistencyToken, allowPartial: !strict };
    const found = new Map<string, v1.Match>();
    for (const v of vectors) {
      const res = await this.search(v, deadline, read).catch((err: unknown) => {
        // Warn never blocks an enrolment; refuse cannot vouch for one it could not check.
        if (mode === 'refuse') throw new UnavailableError(`the duplicate check could not run (${getErrorMessage(err)}); nothing was queued`, 'DUPLICATE_CHECK');
        return [];
      });
      for (const m of res) {
        const prev = m.subjectId ? found.get(m.subjectId) : undefined;
        if (m.accepted && m.subjectId && m.subjectId !== subjectId && (!prev || Number(prev.score) < Number(m.score))) found.set(m.subjectId, m);
      }
    }
    const duplicates = [...found.values()].sort((a, b) => Number(b.score) - Number(a.score));
    if (mode === 'refuse' && duplicates.length > 0) {
      throw new AlreadyExistsError(`a probe of this enrolment is accepted as ${duplicates.map((d) => `'${d.subjectId}' (score ${Number(d.score).toFixed(3)})`).join(', ')}: refused (DUPLICATE_CHECK=refuse); nothing was queued`, 'DUPLICATE');
    }
    return duplicates;
  }

  /**
   * Queues the removal without asking Redis first: a subject whose Enrol is
   * still queued must be removed too (the job order decides, and the
   * removal's barrier keeps the earlier enrolment from landing after it).
   * With `wait`, a subject that had nothing to remove is NOT_FOUND.
   */
  async remove(req: v1.RemoveRequest__Output, call: Call): Promise<v1.RemoveResponse> {
    assertSubjectId(req.subjectId);
    const job = await this.queue.remove(req.subjectId, req.requestId, callerOf(call.metadata)?.sub);
    if (!req.wait) return { jobId: String(job.id), consistencyToken: '' };
    const result = await this.waitFor(job, call);
    if (result.notFound) throw new NotFoundError(`subject '${req.subjectId}' had no templates to remove (job ${job.id}; an enrolment queued before this removal will not land)`, 'SUBJECT_NOT_FOUND');
    return { jobId: String(job.id), consistencyToken: result.token };
  }

  /** The bulk lane: up to MAX_IMPORT_SUBJECTS subjects in one job, checked here as Enrol checks one. */
  async import(req: v1.ImportRequest__Output, call: Call): Promise<v1.ImportResponse> {
    const dim = await this.writeDim();
    const subjects = req.subjects;
    if (subjects.length === 0 || subjects.length > MAX_IMPORT_SUBJECTS) {
      throw new InvalidArgumentError(`${subjects.length} subjects; an Import carries 1-${MAX_IMPORT_SUBJECTS}`, 'PROBE');
    }
    const seen = new Set<string>();
    const checked = subjects.map((s, i) => {
      try {
        assertSubjectId(s.subjectId);
      } catch (err) {
        throw new InvalidArgumentError(`subject ${i}: ${getErrorMessage(err)}`, 'SUBJECT_ID');
      }
      if (seen.has(s.subjectId)) throw new InvalidArgumentError(`subject ${shown(s.subjectId)} appears twice in one Import`, 'SUBJECT_ID');
      seen.add(s.subjectId);
      const vectors = s.vectors;
      if (vectors.length === 0 || vectors.length > MAX_PROBES) throw new InvalidArgumentError(`subject ${shown(s.subjectId)}: ${vectors.length} vectors; 1-${MAX_PROBES}`, 'PROBE');
      return { subjectId: s.subjectId, replace: s.replace, vectors: vectors.map((v, j) => this.probes.vectorOf({ vector: v, kind: 'vector' }, dim, `subject ${s.subjectId} vector ${j}`)) };
    });
    const job = await this.queue.import(checked, req.requestId, callerOf(call.metadata)?.sub);
    if (!req.wait) return { jobId: String(job.id), results: [], consistencyToken: '' };
    const result = await this.waitFor(job, call);
    return { jobId: String(job.id), results: (result.results ?? []).map((r: ImportOutcome) => ({ ...r })), consistencyToken: result.token };
  }

  async getJob(req: v1.GetJobRequest__Output, call: Call): Promise<v1.JobStatus> {
    if (!JOB_ID.test(req.jobId)) throw new InvalidArgumentError(`job id ${shown(req.jobId)} is not one Enrol, Remove or Import returned`);
    const jobId = req.jobId;
    const unknown = () => new NotFoundError(`job ${jobId} is unknown (completed jobs are kept for an hour)`);
    // Job ids are sequential: an enrol caller may see its own jobs only, and another's is "unknown" (not
    // "forbidden"), so walking the ids tells it nothing of who was enrolled or removed.
    const caller = callerOf(call.metadata);
    if (caller && !caller.roles.includes('admin') && (await storeCall(() => this.queue.owner(jobId))) !== caller.sub) throw unknown();
    const status = await storeCall(() => this.queue.status(jobId));
    if (!status) throw unknown();
    return status;
  }

  async listJobs(req: v1.ListJobsRequest__Output): Promise<v1.ListJobsResponse> {
    const state = req.state || 'failed';
    if (state !== 'failed') throw new InvalidArgumentError(`only failed jobs are listed, not '${state}'`);
    const limit = req.limit || 100;
    if (limit > 1000) throw new InvalidArgumentError(`limit ${limit} is above 1000`);
    const [jobs, total] = await storeCall(() => Promise.all([this.queue.failed(limit), this.queue.failedCount()]));
    return { jobs, total };
  }

  /**
   * A removal's receipt: every replica of the subject's shard is asked at or
   * past the removal's token whether it still holds a template of the
   * subject; the store of record and the queue are checked too.
   */
  async verifyRemoval(req: v1.VerifyRemovalRequest__Output, deadline: number): Promise<v1.VerifyRemovalResponse> {
    assertSubjectId(req.subjectId);
    if (!isStreamId(req.consistencyToken)) throw new InvalidArgumentError(`consistency_token ${shown(req.consistencyToken)} is not a token Remove returned`, 'TOKEN');
    const k = this.directory.count;
    if (k === 0) throw new UnavailableError('no shard replica has answered yet', 'SHARDS_UNAVAILABLE');
    const index = shardOfSlot(slotOf(req.subjectId), k);
    const query = f32leBytes(new Float32Array(this.directory.dim));
    const replicas = await Promise.all(
      this.directory
        .all()
        .filter((r) => r.status?.index === index)
        .map(async (r) => {
          try {
            const res = await unary(r.client, 'ScoreSubject', { subjectId: req.subjectId, queryF32: query, consistencyToken: req.consistencyToken, expectedShard: { index } }, { deadline });
            return { address: r.address, shardIndex: index, found: res.found, watermark: res.watermark, error: '' };
          } catch (err) {
            return { address: r.address, shardIndex: index, found: false, watermark: '', error: getErrorMessage(err) };
          }
        }),
    );
    const [templates, jobs] = await storeCall(() => Promise.all([this.store.templateIds(req.subjectId), this.queue.jobsCarrying(req.subjectId)]));
    const answered = replicas.length > 0 && replicas.every((r) => !r.error && !r.found && r.watermark !== '' && compareStreamIds(r.watermark, req.consistencyToken) >= 0);
    return { removed: answered && templates.length === 0 && jobs === 0, replicas, storeTemplates: templates.length, jobsWithVectors: jobs, aofRewriteBoundMs: this.config.aofRewriteAfterRemoveMs };
  }

  /** The vector width writes must have: the shards', or the store's when no shard has answered (enrolment works without shards). */
  private async writeDim(): Promise<number> {
    if (this.directory.dim) return this.directory.dim;
    this.storeDim ??= (await storeCall(() => this.store.dim())) || undefined;
    if (!this.storeDim) throw new UnavailableError('the vector width is unknown: no shard has answered and the store is empty', 'SHARDS_UNAVAILABLE');
    return this.storeDim;
  }

  /** A job's result within the call's deadline; a failed job is ABORTED (JobFailedError), with its reason. */
  private waitFor(job: Parameters<EnrolQueue['wait']>[0], call: Call) {
    return this.queue.wait(job, callDeadline(call.getDeadline(), this.config.defaultTimeoutMs) - Date.now());
  }
}

/** A read of Redis (the queue, the store) that failed for want of Redis: UNAVAILABLE, saying so. */
export async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    // Ours already say what went wrong (a bad argument, a refused change); the rest is Redis not answering.
    if (err instanceof YocoError) throw err;
    throw new UnavailableError(`Redis unavailable: ${getErrorMessage(err)}`, 'STORE_UNAVAILABLE');
  }
}
