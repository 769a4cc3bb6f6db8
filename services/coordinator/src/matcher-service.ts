import type * as grpc from '@grpc/grpc-js';
import {
  assertVectors,
  DeadlineError,
  f32FromBytes,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  UnavailableError,
  YocoError,
} from '@yoco/common';
import { assertSubjectId, GalleryStore, isStreamId, shardOfSlot, slotOf, SubjectNotFoundError, templateIdOf } from '@yoco/gallery';
import { JobFailedError, type EnrolQueue } from '@yoco/queue';
import { Histogram, type Registry } from 'prom-client';
import { unary, type CallContext } from '@yoco/rpc';
import type { CoordinatorConfig } from './config.js';
import { ShardCaller, ShardUnavailableError } from './shard-caller.js';
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
}

type Call = grpc.ServerUnaryCall<unknown, unknown>;

/** Raw little-endian float32: the shards read it without decoding floats one by one. */
function f32Bytes(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

class FailedPreconditionError extends YocoError {
  constructor(message: string) {
    super('STORE_MISMATCH', message);
  }
}

/** A job ran and failed (its reason is in the message). */
class AbortedError extends YocoError {
  constructor(message: string) {
    super('ABORTED', message);
  }
}

/** What the replica said of itself at the last poll, or UNREACHABLE when it did not answer. */
function replicaState(r: Replica): string {
  if (!r.status || (r.lastError !== undefined && !r.lastError.startsWith('state '))) return 'UNREACHABLE';
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
      Identify: (req: any, call: Call) => this.identify(req, this.deadline(call)),
      Verify: (req: any, call: Call) => this.verify(req, call),
      Enrol: (req: any, call: Call) => this.enrol(req, call),
      Remove: (req: any, call: Call) => this.remove(req, call),
      GetSubject: (req: any) => this.getSubject(req),
      ClusterStatus: () => this.clusterStatus(),
      GetJob: (req: any) => this.getJob(req),
      ListJobs: (req: any) => this.listJobs(req),
    };
  }

  private deadline(call: Call): number {
    const d = call.getDeadline();
    const t = d instanceof Date ? d.getTime() : d;
    return (Number.isFinite(t) ? t : Date.now() + this.deps.config.defaultTimeoutMs) - DEADLINE_MARGIN_MS;
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
  private vectorOf(probe: Probe, dim: number): Float32Array {
    const bytes = probe.vector?.f32le;
    const v = bytes && bytes.length > 0 ? f32FromBytes(bytes, 'probe vector') : Float32Array.from(probe.vector?.values ?? []);
    assertVectors(v, dim, 'probe vector', 1);
    return v;
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
        if (v.length !== dim) throw new FailedPreconditionError(`the embedder's model gives ${v.length}-wide vectors but the cluster's head takes ${dim}`);
        out[images[k].index] = v;
      });
    }
    return out as Float32Array[];
  }

  private threshold(requested: number | undefined): number {
    const t = requested ?? 0;
    if (!Number.isFinite(t) || t < 0 || t > 1) throw new InvalidArgumentError(`threshold ${t} is outside [0, 1] (0 = the default)`);
    return t > 0 ? t : this.deps.config.defaultThreshold;
  }

  private token(token: string | undefined): string {
    if (token && !isStreamId(token)) throw new InvalidArgumentError(`consistency_token '${token}' is not a token Enrol or Remove returned`, 'TOKEN');
    return token ?? '';
  }

  /** Calls multiplexed over one stream (see MultiplexedStreams): the same answers as the unary methods. */
  multiplexed() {
    return {
      IdentifyStream: (req: any, { deadline, timeoutMs }: CallContext) =>
        this.identify(req, (timeoutMs ? deadline : Date.now() + this.deps.config.defaultTimeoutMs) - DEADLINE_MARGIN_MS),
    };
  }

  /** `deadline`: epoch ms, the margin for a partial answer already taken off. */
  async identify(req: { probe?: Probe; topK?: number; threshold?: number; consistencyToken?: string; allowPartial?: boolean }, deadline: number) {
    const { k, dim } = this.topology();
    const topK = req.topK || DEFAULT_TOP_K;
    if (topK > MAX_TOP_K) throw new InvalidArgumentError(`top_k ${topK} is above ${MAX_TOP_K}`, 'TOP_K');
    const threshold = this.threshold(req.threshold);
    const consistencyToken = this.token(req.consistencyToken);
    const [vector] = await this.probeVectors([req.probe], dim, deadline);
    const request = { queriesF32: f32Bytes(vector), topK, consistencyToken };
    this.fanout.observe(k);
    const settled = await Promise.allSettled(
      Array.from({ length: k }, (_, i) =>
        this.caller.call(i, (r, o) => this.deps.directory.search<ShardSearchResponse>(r, request, o), { deadline, hedgeAfterMs: this.hedgeDelay(i) }),
      ),
    );
    const matches: ShardMatch[] = [];
    const missing: number[] = [];
    const reasons: string[] = [];
    let gallerySize = 0;
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') {
        matches.push(...(s.value.response.results[0]?.matches ?? []));
        this.deps.directory.recordSearchTime(i, s.value.response.searchMs);
        gallerySize += s.value.response.templates;
        return;
      }
      const err = s.reason as Error;
      // The request itself is wrong (a shard refused it as such): no replica will do better.
      if (!(err instanceof ShardUnavailableError) && !(err instanceof DeadlineError)) throw err;
      missing.push(i);
      reasons.push(err.message);
    });
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
    return { matches: top, partial: missing.length > 0, missingShards: missing, gallerySize, threshold };
  }

  async verify(req: { subjectId?: string; probe?: Probe; threshold?: number; consistencyToken?: string }, call: Call) {
    const { k, dim } = this.topology();
    assertSubjectId(req.subjectId);
    const threshold = this.threshold(req.threshold);
    const [vector] = await this.probeVectors([req.probe], dim, this.deadline(call));
    const index = shardOfSlot(slotOf(req.subjectId), k);
    const request = { subjectId: req.subjectId, queryF32: f32Bytes(vector), consistencyToken: this.token(req.consistencyToken) };
    const { response } = await this.caller.call(
      index,
      (r, o) => unary<object, { found: boolean; best?: ShardMatch }>(r.client, 'ScoreSubject', request, o),
      { deadline: this.deadline(call), hedgeAfterMs: this.hedgeDelay(index) },
    );
    if (!response.found || !response.best) throw new SubjectNotFoundError(req.subjectId);
    return { match: response.best.score >= threshold, score: response.best.score, templateId: response.best.templateId, threshold };
  }

  /** Validates everything, then queues the job; with `wait`, returns once it is applied (within the deadline). */
  async enrol(req: { subjectId?: string; probes?: Probe[]; replace?: boolean; wait?: boolean }, call: Call) {
    assertSubjectId(req.subjectId);
    const dim = await this.writeDim();
    const probes = req.probes ?? [];
    if (probes.length === 0) throw new InvalidArgumentError('probes is empty: enrol at least one image or vector', 'PROBE');
    if (probes.length > MAX_PROBES) throw new InvalidArgumentError(`${probes.length} probes; at most ${MAX_PROBES} per Enrol`, 'PROBE');
    const vectors = await this.probeVectors(probes, dim, this.deadline(call));
    const subjectId = req.subjectId;
    const job = await this.deps.queue.enrol(subjectId, vectors, req.replace ?? false);
    const templateIds = [...new Set(vectors.map((v) => templateIdOf(subjectId, v)))];
    if (!req.wait) return { jobId: String(job.id), consistencyToken: '', templateIds };
    const result = await this.waitFor(job, call);
    return { jobId: String(job.id), consistencyToken: result.token, templateIds };
  }

  async remove(req: { subjectId?: string; wait?: boolean }, call: Call) {
    assertSubjectId(req.subjectId);
    if ((await this.storeCall(() => this.deps.store.templateIds(req.subjectId!))).length === 0) throw new SubjectNotFoundError(req.subjectId);
    const job = await this.deps.queue.remove(req.subjectId);
    if (!req.wait) return { jobId: String(job.id), consistencyToken: '' };
    const result = await this.waitFor(job, call);
    return { jobId: String(job.id), consistencyToken: result.token };
  }

  /** The vector width writes must have: the shards', or the store's when no shard has answered (enrolment works without shards). */
  private async writeDim(): Promise<number> {
    if (this.deps.directory.dim) return this.deps.directory.dim;
    this.storeDim ??= Number(await this.storeCall(() => this.deps.store.storedDim())) || undefined;
    if (!this.storeDim) throw new UnavailableError('the vector width is unknown: no shard has answered and the store is empty', 'SHARDS_UNAVAILABLE');
    return this.storeDim;
  }

  private async waitFor(job: Parameters<EnrolQueue['wait']>[0], call: Call) {
    try {
      return await this.deps.queue.wait(job, this.deadline(call) - Date.now());
    } catch (err) {
      if (err instanceof JobFailedError) throw new AbortedError(err.message);
      throw err;
    }
  }

  private async storeCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new UnavailableError(`Redis unavailable: ${(err as Error).message}`, 'STORE_UNAVAILABLE');
    }
  }

  async getJob(req: { jobId?: string }) {
    if (!req.jobId || !/^\d{1,20}$/.test(req.jobId)) throw new InvalidArgumentError(`job id '${req.jobId ?? ''}' is not one Enrol or Remove returned`);
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
        healthy: replicas.some((r) => r.healthy),
        replicas: replicas.map((r) => ({
          address: r.address,
          healthy: r.healthy,
          state: replicaState(r),
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
