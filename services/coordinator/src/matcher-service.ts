import type * as grpc from '@grpc/grpc-js';
import {
  assertVectors,
  CancelledError,
  FailedPreconditionError,
  deadlineFrom,
  DeadlineError,
  f32FromBytes,
  InvalidArgumentError,
  norm,
  NotFoundError,
  NotImplementedError,
  ResourceExhaustedError,
  shown,
  UnavailableError,
  getErrorMessage,
} from '@yoco/common';
import { assertSubjectId, GalleryStore, isStreamId, shardOfSlot, slotOf, SubjectNotFoundError, templateIdOf } from '@yoco/gallery';
import { MAX_IMPORT_SUBJECTS, type EnrolQueue, type ImportOutcome } from '@yoco/queue';
import { Histogram, type Registry } from 'prom-client';
import { unary, type CallContext } from '@yoco/rpc';
import type { CoordinatorConfig } from './config.js';
import { ShardUnavailableError } from './errors/index.js';
import { ShardCaller } from './shard-caller.js';
import type { EmbedderClient } from './embedder-client.js';
import type { Replica, ShardDirectory } from './shard-directory.js';

export const MAX_TOP_K = 1000;
export const DEFAULT_TOP_K = 10;
/** Kept back from the caller's deadline so a partial answer still reaches it in time. */
const DEADLINE_MARGIN_MS = 20;

interface Probe {
  image?: Buffer;
  vector?: { values: number[]; f32le?: Buffer };
  kind?: 'image' | 'vector';
}

interface ShardMatch {
  subjectId: string;
  templateId: string;
  score: number;
  logit: number;
}

interface ShardSearchResponse {
  results: { matches: ShardMatch[] }[];
  shardIndex: number;
  templates: number;
  watermark: string;
  searchMs: number;
  stalenessMs: number;
}

interface ShardScoreResponse {
  found: boolean;
  best?: ShardMatch;
  shardIndex: number;
  stalenessMs: number;
}

type Call = grpc.ServerUnaryCall<unknown, unknown>;

/** Raw little-endian float32: the shards read it without decoding floats one by one. */
function f32Bytes(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** A job's id as Enrol, Remove or Import returned it. */
const JOB_ID = /^\d{1,20}$/;

/** What the replica said of itself at the last poll, or UNREACHABLE when it did not answer. */
function replicaState(r: Replica): string {
  if (!r.status || !r.reachable) return 'UNREACHABLE';
  return r.status.state;
}

export interface MatcherDeps {
  config: CoordinatorConfig;
  /** Embeds image probes; absent when no embedder is configured. */
  embedder?: EmbedderClient;
  directory: ShardDirectory;
  store: GalleryStore;
  queue: EnrolQueue;
  registry: Registry;
}

/** Templates one Enrol may carry. */
export const MAX_PROBES = 64;

/** The public Matcher service: validation, fan-out, merge, thresholds. */
export class MatcherService {
  private readonly caller: ShardCaller;
  private readonly fanout: Histogram;
  private storeDim: number | undefined;

  constructor(private readonly deps: MatcherDeps) {
    this.caller = new ShardCaller(deps.directory, deps.registry);
    this.fanout = new Histogram({
      name: 'yoco_coordinator_fanout_shards',
      help: 'shard indexes asked per Identify',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [deps.registry],
    });
  }

  handlers() {
    return {
      Identify: (req: any, call: Call) => this.identify(req, this.deadline(call), cancelSignal(call), `peer:${call.getPeer()}`),
      Verify: (req: any, call: Call) => this.verify(req, call),
      Enrol: (req: any, call: Call) => this.enrol(req, call),
      Remove: (req: any, call: Call) => this.remove(req, call),
      Import: (req: any, call: Call) => this.import(req, call),
      GetSubject: (req: any) => this.getSubject(req),
      ClusterStatus: () => this.clusterStatus(),
      GetJob: (req: any) => this.getJob(req),
      ListJobs: (req: any) => this.listJobs(req),
    };
  }

  /** The call's deadline (never further than MAX_CALL_TIMEOUT_MS), less the margin for a partial answer. */
  private deadline(call: Call): number {
    return deadlineFrom(call.getDeadline(), this.deps.config.defaultTimeoutMs) - DEADLINE_MARGIN_MS;
  }

  /**
   * Drops an answer that must not be merged: from another shard index (a
   * reused address), or too stale for the policy. ScoreSubject answers are not
   * checked for their index (builds before it did not send one; the shard
   * itself refuses a request naming another index).
   */
  private refusal(index: number, answer: { shardIndex?: number; stalenessMs: number }, replica: Replica): string | undefined {
    this.deps.directory.noteStaleness(replica, answer.stalenessMs);
    if (answer.shardIndex !== undefined && answer.shardIndex !== index) return `answered as shard ${answer.shardIndex}, not shard ${index} (its address was reused)`;
    const { stalePolicy, maxStalenessMs } = this.deps.config;
    if (stalePolicy === 'refuse' && answer.stalenessMs > maxStalenessMs) {
      return `stale: its view is ${Math.round(answer.stalenessMs)} ms old (MAX_STALENESS_MS ${maxStalenessMs})`;
    }
    return undefined;
  }

  private hedgeDelay(index: number): number | undefined {
    const h = this.deps.config.hedgeDelay;
    if (h === 0) return undefined;
    if (h !== 'auto') return h;
    // Until there is a history, wait long enough not to double every call of a cold cluster.
    return Math.max(1, this.deps.directory.p95(index) ?? 50);
  }

  /** The cluster's topology, or UNAVAILABLE when no shard has answered yet. */
  private topology(): { k: number; dim: number } {
    const { count: k, dim } = this.deps.directory;
    if (k === 0) throw new UnavailableError('no shard replica has answered yet; the cluster is starting or unreachable', 'SHARDS_UNAVAILABLE');
    return { k, dim };
  }

  /** A vector probe's values, checked; image probes go through probeVectors. */
  private vectorOf(probe: Probe, dim: number, what = 'probe vector'): Float32Array {
    const bytes = probe.vector?.f32le;
    const v = bytes && bytes.length > 0 ? f32FromBytes(bytes, what) : Float32Array.from(probe.vector?.values ?? []);
    assertVectors(v, dim, what, 1);
    this.checkNorm(v, what);
    return v;
  }

  /** The opt-in norm range (VECTOR_NORM_RANGE): a vector far from what the model emits is refused. */
  private checkNorm(v: Float32Array, what: string): void {
    const range = this.deps.config.normRange;
    if (!range) return;
    const n = norm(v);
    if (n < range[0] || n > range[1]) throw new InvalidArgumentError(`${what} has norm ${n.toPrecision(4)}, outside the accepted ${range[0]}..${range[1]} (VECTOR_NORM_RANGE)`, 'VECTOR_NORM');
  }

  /** Every probe as a vector: vectors checked, images embedded together in one Embed call. */
  private async probeVectors(probes: (Probe | null | undefined)[], dim: number, deadline: number): Promise<Float32Array[]> {
    const out: (Float32Array | undefined)[] = [];
    const images: { index: number; bytes: Buffer }[] = [];
    probes.forEach((probe, index) => {
      if (probe?.kind === 'vector') out[index] = this.vectorOf(probe, dim);
      else if (probe?.kind === 'image') images.push({ index, bytes: probe.image ?? Buffer.alloc(0) });
      else throw new InvalidArgumentError(`${probes.length > 1 ? `probe ${index}` : 'probe'} is empty: set an image or a vector`, 'PROBE');
    });
    if (images.length > 0) {
      const embedder = this.deps.embedder;
      if (!embedder) throw new NotImplementedError('image probes need an embedder (EMBEDDER_ADDRESS is not set); send a vector');
      const vectors = await embedder.embed(images.map((i) => i.bytes), deadline, probes.length > 1 ? images.map((i) => i.index) : undefined);
      vectors.forEach((v, k) => {
        if (v.length !== dim) throw new FailedPreconditionError(`the embedder's model gives ${v.length}-wide vectors but the cluster's head takes ${dim}`, 'STORE_MISMATCH');
        assertVectors(v, dim, 'embedding', 1);
        out[images[k].index] = v;
      });
    }
    return out as Float32Array[];
  }

  private threshold(requested: number | undefined): number {
    const t = requested ?? 0;
    if (!Number.isFinite(t) || t < 0 || t > 1) throw new InvalidArgumentError(`threshold ${t} is outside [0, 1] (0 = the default)`, 'THRESHOLD');
    const min = this.deps.config.minThreshold;
    // The field is a float32: shown as the caller wrote it, not as 0.10000000149011612.
    if (t > 0 && t < min) throw new InvalidArgumentError(`threshold ${Number(t.toPrecision(6))} is below this deployment's floor ${min} (MIN_THRESHOLD)`, 'THRESHOLD');
    return t > 0 ? t : this.deps.config.defaultThreshold;
  }

  private token(token: string | undefined): string {
    if (token && !isStreamId(token)) throw new InvalidArgumentError(`consistency_token ${shown(token)} is not a token Enrol or Remove returned`, 'TOKEN');
    return token ?? '';
  }

  /** Calls multiplexed over one stream (see MultiplexedStreams): the same answers as the unary methods. */
  multiplexed() {
    return {
      IdentifyStream: (req: any, { deadline, timeoutMs, signal, lane }: CallContext) =>
        this.identify(req, (timeoutMs ? deadline : Date.now() + this.deps.config.defaultTimeoutMs) - DEADLINE_MARGIN_MS, signal, lane),
    };
  }

  /**
   * `deadline`: epoch ms, the margin for a partial answer already taken off. `signal`: the caller gave up.
   * `lane`: who the caller is (a stream, a peer); shards give each lane its turn.
   */
  async identify(
    req: { probe?: Probe; topK?: number; threshold?: number; consistencyToken?: string; allowPartial?: boolean },
    deadline: number,
    signal?: AbortSignal,
    lane = '',
  ) {
    const { k, dim } = this.topology();
    const topK = req.topK || DEFAULT_TOP_K;
    if (topK > MAX_TOP_K) throw new InvalidArgumentError(`top_k ${topK} is above ${MAX_TOP_K}`, 'TOP_K');
    const threshold = this.threshold(req.threshold);
    const consistencyToken = this.token(req.consistencyToken);
    const [vector] = await this.probeVectors([req.probe], dim, deadline);
    const queriesF32 = f32Bytes(vector);
    this.fanout.observe(k);
    const settled = await Promise.allSettled(
      Array.from({ length: k }, (_, i) =>
        this.caller.call(
          i,
          // Each shard is told which index it is meant to be: a replica at a reused address refuses.
          (r, o) => this.deps.directory.search<ShardSearchResponse>(r, { queriesF32, topK, consistencyToken, expectedShard: { index: i }, lane }, o),
          { deadline, hedgeAfterMs: this.hedgeDelay(i), signal, reject: (res, r) => this.refusal(i, res, r) },
        ),
      ),
    );
    if (signal?.aborted) throw new CancelledError('the caller cancelled the call');
    const matches: ShardMatch[] = [];
    const missing: number[] = [];
    const reasons: string[] = [];
    let gallerySize = 0;
    let stalenessMs = 0;
    let overloaded = 0;
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') {
        const res = s.value.response;
        matches.push(...(res.results[0]?.matches ?? []));
        this.deps.directory.recordSearchTime(i, res.searchMs);
        gallerySize += res.templates;
        stalenessMs = Math.max(stalenessMs, res.stalenessMs);
        return;
      }
      const err = s.reason as Error;
      // The request itself is wrong (a shard refused it as such): no replica will do better.
      if (!(err instanceof ShardUnavailableError) && !(err instanceof DeadlineError)) throw err;
      if (err instanceof ShardUnavailableError && err.overloaded) overloaded++;
      missing.push(i);
      reasons.push(err.message);
    });
    if (overloaded > 0 && overloaded === missing.length && !req.allowPartial) {
      throw new ResourceExhaustedError(`shards [${missing.join(', ')}] are at capacity: retry shortly: ${reasons.join('; ')}`);
    }
    if (missing.length > 0 && !req.allowPartial) {
      if (settled.every((s) => s.status === 'rejected' && s.reason instanceof DeadlineError)) {
        throw new DeadlineError(`no shard answered before the deadline: ${reasons.join('; ')}`);
      }
      throw new UnavailableError(`shards [${missing.join(', ')}] unavailable (set allow_partial for what the others found): ${reasons.join('; ')}`, 'SHARDS_UNAVAILABLE');
    }
    matches.sort((a, b) => b.logit - a.logit || (a.subjectId < b.subjectId ? -1 : a.subjectId > b.subjectId ? 1 : 0));
    const seen = new Set<string>();
    const top = [];
    for (const m of matches) {
      if (seen.has(m.subjectId)) continue;
      seen.add(m.subjectId);
      top.push({ subjectId: m.subjectId, score: m.score, templateId: m.templateId, accepted: m.score >= threshold });
      if (top.length === topK) break;
    }
    return { matches: top, partial: missing.length > 0, missingShards: missing, gallerySize, threshold, stalenessMs };
  }

  async verify(req: { subjectId?: string; probe?: Probe; threshold?: number; consistencyToken?: string }, call: Call) {
    const { k, dim } = this.topology();
    assertSubjectId(req.subjectId);
    const threshold = this.threshold(req.threshold);
    const deadline = this.deadline(call);
    const [vector] = await this.probeVectors([req.probe], dim, deadline);
    const index = shardOfSlot(slotOf(req.subjectId), k);
    const request = { subjectId: req.subjectId, queryF32: f32Bytes(vector), consistencyToken: this.token(req.consistencyToken), expectedShard: { index } };
    const { response } = await this.caller.call(
      index,
      (r, o) => unary<object, ShardScoreResponse>(r.client, 'ScoreSubject', request, o),
      { deadline, hedgeAfterMs: this.hedgeDelay(index), signal: cancelSignal(call), reject: (res, r) => this.refusal(index, { stalenessMs: res.stalenessMs }, r) },
    );
    if (!response.found || !response.best) throw new SubjectNotFoundError(req.subjectId);
    return { match: response.best.score >= threshold, score: response.best.score, templateId: response.best.templateId, threshold, stalenessMs: response.stalenessMs };
  }

  /** Validates everything, then queues the job; with `wait`, returns once it is applied (within the deadline). */
  async enrol(req: { subjectId?: string; probes?: Probe[]; replace?: boolean; wait?: boolean; requestId?: string }, call: Call) {
    assertSubjectId(req.subjectId);
    const dim = await this.writeDim();
    const probes = req.probes ?? [];
    if (probes.length === 0) throw new InvalidArgumentError('probes is empty: enrol at least one image or vector', 'PROBE');
    if (probes.length > MAX_PROBES) throw new InvalidArgumentError(`${probes.length} probes; at most ${MAX_PROBES} per Enrol`, 'PROBE');
    const vectors = await this.probeVectors(probes, dim, this.deadline(call));
    const subjectId = req.subjectId;
    const job = await this.deps.queue.enrol(subjectId, vectors, req.replace ?? false, req.requestId ?? '');
    const templateIds = [...new Set(vectors.map((v) => templateIdOf(subjectId, v)))];
    if (!req.wait) return { jobId: String(job.id), consistencyToken: '', templateIds };
    const result = await this.waitFor(job, call);
    return { jobId: String(job.id), consistencyToken: result.token, templateIds };
  }

  /**
   * Queues the removal without asking Redis first: a subject whose Enrol is
   * still queued must be removed too (the job order decides, and the
   * removal's barrier keeps the earlier enrolment from landing after it).
   * With `wait`, a subject that had nothing to remove is NOT_FOUND.
   */
  async remove(req: { subjectId?: string; wait?: boolean; requestId?: string }, call: Call) {
    assertSubjectId(req.subjectId);
    const job = await this.deps.queue.remove(req.subjectId, req.requestId ?? '');
    if (!req.wait) return { jobId: String(job.id), consistencyToken: '' };
    const result = await this.waitFor(job, call);
    if (result.notFound) throw new NotFoundError(`subject '${req.subjectId}' had no templates to remove (job ${job.id}; an enrolment queued before this removal will not land)`, 'SUBJECT_NOT_FOUND');
    return { jobId: String(job.id), consistencyToken: result.token };
  }

  /** The bulk lane: up to MAX_IMPORT_SUBJECTS subjects in one job, checked here as Enrol checks one. */
  async import(req: { subjects?: { subjectId?: string; vectors?: Probe['vector'][]; replace?: boolean }[]; requestId?: string; wait?: boolean }, call: Call) {
    const dim = await this.writeDim();
    const subjects = req.subjects ?? [];
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
      const vectors = s.vectors ?? [];
      if (vectors.length === 0 || vectors.length > MAX_PROBES) throw new InvalidArgumentError(`subject ${shown(s.subjectId)}: ${vectors.length} vectors; 1-${MAX_PROBES}`, 'PROBE');
      return { subjectId: s.subjectId, replace: s.replace ?? false, vectors: vectors.map((v, j) => this.vectorOf({ vector: v }, dim, `subject ${s.subjectId} vector ${j}`)) };
    });
    const job = await this.deps.queue.import(checked, req.requestId ?? '');
    if (!req.wait) return { jobId: String(job.id), results: [], consistencyToken: '' };
    const result = await this.waitFor(job, call);
    return { jobId: String(job.id), results: (result.results ?? []).map((r: ImportOutcome) => ({ ...r })), consistencyToken: result.token };
  }

  /** The vector width writes must have: the shards', or the store's when no shard has answered (enrolment works without shards). */
  private async writeDim(): Promise<number> {
    if (this.deps.directory.dim) return this.deps.directory.dim;
    this.storeDim ??= Number(await this.storeCall(() => this.deps.store.storedDim())) || undefined;
    if (!this.storeDim) throw new UnavailableError('the vector width is unknown: no shard has answered and the store is empty', 'SHARDS_UNAVAILABLE');
    return this.storeDim;
  }

  /** A job's result within the call's deadline; a failed job is ABORTED (JobFailedError), with its reason. */
  private waitFor(job: Parameters<EnrolQueue['wait']>[0], call: Call) {
    return this.deps.queue.wait(job, this.deadline(call) - Date.now());
  }

  private async storeCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new UnavailableError(`Redis unavailable: ${getErrorMessage(err)}`, 'STORE_UNAVAILABLE');
    }
  }

  async getJob(req: { jobId?: string }) {
    if (!req.jobId || !JOB_ID.test(req.jobId)) throw new InvalidArgumentError(`job id ${shown(req.jobId ?? '')} is not one Enrol, Remove or Import returned`);
    const status = await this.storeCall(() => this.deps.queue.status(req.jobId!));
    if (!status) throw new NotFoundError(`job ${req.jobId} is unknown (completed jobs are kept for an hour)`);
    return status;
  }

  async listJobs(req: { state?: string; limit?: number }) {
    const state = req.state || 'failed';
    if (state !== 'failed') throw new InvalidArgumentError(`only failed jobs are listed, not '${state}'`);
    const limit = req.limit || 100;
    if (limit > 1000) throw new InvalidArgumentError(`limit ${limit} is above 1000`);
    const [jobs, total] = await this.storeCall(() => Promise.all([this.deps.queue.failed(limit), this.deps.queue.failedCount()]));
    return { jobs, total };
  }

  async getSubject(req: { subjectId?: string }) {
    assertSubjectId(req.subjectId);
    const ids = await this.storeCall(() => this.deps.store.templateIds(req.subjectId!));
    if (ids.length === 0) throw new SubjectNotFoundError(req.subjectId);
    const slot = slotOf(req.subjectId);
    const k = this.deps.directory.count;
    return { subjectId: req.subjectId, templateIds: ids, slot, shard: k > 0 ? shardOfSlot(slot, k) : 0 };
  }

  async clusterStatus() {
    const { directory, config } = this.deps;
    // The failed-job count is best effort: status must answer while Redis is down.
    const failedJobs = await this.deps.queue.failedCount().catch(() => 0);
    const k = directory.count;
    const shards = Array.from({ length: k }, (_, index) => {
      const replicas = directory.all().filter((r) => r.status?.index === index);
      return {
        index,
        ...directory.p50s(index),
        healthy: replicas.some((r) => r.healthy && directory.excluded(r) === ''),
        replicas: replicas.map((r) => ({
          address: r.address,
          healthy: r.healthy && directory.excluded(r) === '',
          state: replicaState(r),
          stalenessMs: r.status && r.status.stalenessMs >= 0 ? r.status.stalenessMs : -1,
          reason: r.status?.reason ?? '',
          excluded: directory.excluded(r),
          capacity: r.status?.capacity ?? 0,
          deadRows: r.status?.deadRows ?? 0,
          templates: r.status?.templates ?? 0,
          subjects: r.status?.subjects ?? 0,
          ownedSlots: r.status?.ownedSlots ?? 0,
          watermark: r.status?.watermark ?? '',
          headId: r.status?.headId ?? '',
          modelId: r.status?.modelId ?? '',
          engine: r.status?.engine ?? '',
          p95Ms: r.status?.p95Ms ?? 0,
        })),
      };
    });
    const gallerySize = shards.reduce((sum, s) => sum + Math.max(0, ...s.replicas.map((r) => r.templates)), 0);
    return {
      dim: directory.dim,
      shardCount: k,
      epoch: directory.epoch,
      shards,
      gallerySize,
      headId: directory.headId,
      modelId: directory.modelId,
      defaultThreshold: config.defaultThreshold,
      failedJobs,
    };
  }
}

/** Aborted when a unary call's caller cancels it (hedges and shard calls stop with it). */
function cancelSignal(call: Call): AbortSignal {
  const controller = new AbortController();
  call.once('cancelled', () => controller.abort());
  return controller.signal;
}
