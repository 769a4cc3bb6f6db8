import type { DefaultThreshold } from './default-threshold.js';
import { CancelledError, DeadlineError, f32leBytes, InvalidArgumentError, ResourceExhaustedError, shown, UnavailableError } from '@yoco/common';
import { assertSubjectId, isStreamId, shardOfSlot, slotOf, SubjectNotFoundError } from '@yoco/gallery';
import { Counter, Histogram, type Registry } from 'prom-client';
import { unary, type CallContext, type v1 } from '@yoco/rpc';
import type { CoordinatorConfig } from './config.js';
import { ShardUnavailableError } from './errors/index.js';
import { mergeMatches } from './merge.js';
import type { ProbeReader } from './probe-reader.js';
import type { Metadata } from '@grpc/grpc-js';
import { contextFrom, inSpan, spanContext, traceparentOf } from '@yoco/telemetry';
import type { Span } from '@opentelemetry/api';
import { ShardCaller } from './shard-caller.js';
import type { Replica, ShardDirectory } from './shard-directory.js';
import { callDeadline, cancelSignal, type Call } from './unary-call.js';

export const MAX_TOP_K = 1000;
export const DEFAULT_TOP_K = 10;

type IdentifyRequest = v1.IdentifyRequest__Output;

/**
 * The read path: Identify (fan-out to one replica of every shard index,
 * hedged, merged) and Verify (the one shard that owns the subject). It asks
 * shards only; it never reads Redis.
 */
export class IdentifyService {
  private readonly caller: ShardCaller;
  private readonly fanout: Histogram;
  private readonly partial: Counter<'shard'>;

  constructor(
    private readonly config: CoordinatorConfig,
    private readonly directory: ShardDirectory,
    private readonly probes: ProbeReader,
    registry: Registry,
    private readonly defaultThreshold: DefaultThreshold,
  ) {
    this.caller = new ShardCaller(directory, registry);
    this.partial = new Counter({ name: 'yoco_coordinator_partial_answers_total', help: 'Identify answers missing at least one shard index (allow_partial), by the missing index', labelNames: ['shard'], registers: [registry] });
    this.fanout = new Histogram({ name: 'yoco_coordinator_fanout_shards', help: 'shard indexes asked per Identify', buckets: [1, 2, 4, 8, 16, 32, 64], registers: [registry] });
  }

  unaryIdentify(req: IdentifyRequest, call: Call): Promise<v1.IdentifyResponse> {
    return this.identify(req, callDeadline(call.getDeadline(), this.config.defaultTimeoutMs), cancelSignal(call), `peer:${call.getPeer()}`, traceparentIn(call.metadata));
  }

  /** An IdentifyStream call: the same answer as the unary one, with the call's own timeout and cancel. */
  streamedIdentify(req: IdentifyRequest, { callerDeadline, signal, lane, metadata }: CallContext): Promise<v1.IdentifyResponse> {
    return this.identify(req, callDeadline(callerDeadline, this.config.defaultTimeoutMs), signal, lane, traceparentIn(metadata));
  }

  /**
   * `deadline`: epoch ms, the margin for a partial answer already taken off. `signal`: the caller gave up.
   * `lane`: who the caller is (a stream, a peer); shards give each lane its turn.
   */
  async identify(req: IdentifyRequest, deadline: number, signal?: AbortSignal, lane = '', traceparent = ''): Promise<v1.IdentifyResponse> {
    // One trace per Identify (continuing the caller's, when it sent a traceparent): a span per shard call, and the shards' own below them.
    return inSpan('Matcher/Identify', contextFrom(traceparent), 'server', (span) => this.identifyIn(span, req, deadline, signal, lane));
  }

  private async identifyIn(span: Span, req: IdentifyRequest, deadline: number, signal: AbortSignal | undefined, lane: string): Promise<v1.IdentifyResponse> {
    // One epoch for the whole call: every shard is asked for its slots in it, so no subject is in two answers.
    const { k, epoch, dim } = this.topology();
    const topK = req.topK || DEFAULT_TOP_K;
    if (topK > MAX_TOP_K) throw new InvalidArgumentError(`top_k ${topK} is above ${MAX_TOP_K}`, 'TOP_K');
    const threshold = this.threshold(req.threshold);
    const consistencyToken = this.token(req.consistencyToken);
    const { vectors: [vector], faces: [face] } = await this.probes.read([req.probe], dim, deadline, traceparentOf(span));
    const queriesF32 = f32leBytes(vector);
    this.fanout.observe(k);
    const settled = await Promise.allSettled(
      Array.from({ length: k }, (_, i) =>
        this.caller.call(
          i,
          // Each shard is told which index it is meant to be: a replica at a reused address refuses.
          (r, o) => inSpan(`shard ${i} Search`, spanContext(span), 'client', (child) => this.directory.search(r, { traceparent: traceparentOf(child), queriesF32, topK, consistencyToken, expectedShard: { index: i, count: k, epoch }, lane }, o)),
          { deadline, hedgeAfterMs: this.hedgeDelay(i), signal, reject: (res, r) => this.refusal(i, res, r), route: { epoch, k } },
        ),
      ),
    );
    if (signal?.aborted) throw new CancelledError('the caller cancelled the call');
    const matches: v1.ShardMatch__Output[] = [];
    const missing: number[] = [];
    const reasons: string[] = [];
    let gallerySize = 0;
    let stalenessMs = 0;
    let overloaded = 0;
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') {
        const res = s.value.response;
        matches.push(...(res.results[0]?.matches ?? []));
        this.directory.recordSearchTime(i, res.searchMs);
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
    for (const m of missing) this.partial.inc({ shard: String(m) });
    return { matches: mergeMatches(matches, topK, threshold), partial: missing.length > 0, missingShards: missing, gallerySize, threshold, stalenessMs, face };
  }

  async verify(req: v1.VerifyRequest__Output, call: Call): Promise<v1.VerifyResponse> {
    const { k, epoch, dim } = this.topology();
    assertSubjectId(req.subjectId);
    const threshold = this.threshold(req.threshold);
    const deadline = callDeadline(call.getDeadline(), this.config.defaultTimeoutMs);
    const { vectors: [vector], faces: [face] } = await this.probes.read([req.probe], dim, deadline);
    const index = shardOfSlot(slotOf(req.subjectId), k);
    const request = { subjectId: req.subjectId, queryF32: f32leBytes(vector), consistencyToken: this.token(req.consistencyToken), expectedShard: { index, count: k, epoch } };
    const { response } = await this.caller.call(
      index,
      (r, o) => unary(r.client, 'ScoreSubject', request, o),
      { deadline, hedgeAfterMs: this.hedgeDelay(index), signal: cancelSignal(call), reject: (res, r) => this.refusal(index, { stalenessMs: res.stalenessMs }, r), route: { epoch, k } },
    );
    if (!response.found || !response.best) throw new SubjectNotFoundError(req.subjectId);
    return { match: response.best.score >= threshold, score: response.best.score, templateId: response.best.templateId, threshold, stalenessMs: response.stalenessMs, face };
  }

  /** The cluster's topology, or UNAVAILABLE when no shard has answered yet. */
  private topology(): { k: number; epoch: number; dim: number } {
    const { k, epoch } = this.directory.route();
    const dim = this.directory.dim;
    // k can come from the topology in Redis before any replica has answered: without a width, nothing to check a probe by.
    if (k === 0 || dim === 0) throw new UnavailableError('no shard replica has answered yet; the cluster is starting or unreachable', 'SHARDS_UNAVAILABLE');
    return { k, epoch, dim };
  }

  /**
   * Drops an answer that must not be merged: from another shard index (a
   * reused address), or too stale for the policy. ScoreSubject answers are not
   * checked for their index (builds before it did not send one; the shard
   * itself refuses a request naming another index).
   */
  private refusal(index: number, answer: { shardIndex?: number; stalenessMs: number }, replica: Replica): string | undefined {
    this.directory.noteStaleness(replica, answer.stalenessMs);
    if (answer.shardIndex !== undefined && answer.shardIndex !== index) return `answered as shard ${answer.shardIndex}, not shard ${index} (its address was reused)`;
    const { stalePolicy, maxStalenessMs } = this.config;
    if (stalePolicy === 'refuse' && answer.stalenessMs > maxStalenessMs) {
      return `stale: its view is ${Math.round(answer.stalenessMs)} ms old (MAX_STALENESS_MS ${maxStalenessMs})`;
    }
    return undefined;
  }

  private hedgeDelay(index: number): number | undefined {
    const h = this.config.hedgeDelay;
    if (h === 0) return undefined;
    if (h !== 'auto') return h;
    // Until there is a history, wait long enough not to double every call of a cold cluster.
    return Math.max(1, this.directory.p95(index) ?? 50);
  }

  private threshold(t: number): number {
    if (!Number.isFinite(t) || t < 0 || t > 1) throw new InvalidArgumentError(`threshold ${t} is outside [0, 1] (0 = the default)`, 'THRESHOLD');
    const min = this.config.minThreshold;
    // The field is a float32: shown as the caller wrote it, not as 0.10000000149011612.
    if (t > 0 && t < min) throw new InvalidArgumentError(`threshold ${Number(t.toPrecision(6))} is below this deployment's floor ${min} (MIN_THRESHOLD)`, 'THRESHOLD');
    return t > 0 ? t : this.defaultThreshold.value;
  }

  private token(token: string): string {
    if (token && !isStreamId(token)) throw new InvalidArgumentError(`consistency_token ${shown(token)} is not a token Enrol or Remove returned`, 'TOKEN');
    return token;
  }
}

/** The caller's W3C trace context, when it sent one. */
function traceparentIn(metadata: Metadata): string {
  const v = metadata.get('traceparent')[0];
  return typeof v === 'string' ? v : '';
}
