import type * as grpc from '@grpc/grpc-js';
import {
  Batcher,
  CancelledError,
  deadlineFrom,
  decodeVectors,
  FailedPreconditionError,
  failpointMs,
  InvalidArgumentError,
  LatencyWindow,
  sleep,
  UnavailableError,
  type DropReason,
} from '@yoco/common';
import { connectRedis, GallerySlice, GalleryStore, SliceFollower, assertSubjectId, TopologyStore, type FollowerEvent, type SlotMask, type SubjectMatch } from '@yoco/gallery';
import { assertProviders, createScorer, parseHead, type Head } from '@yoco/head';
import { Counter, Gauge, Histogram } from 'prom-client';
import { bindService, loadProtos, RpcServer, SERVICE_NAMES, ServiceMetrics, type Logger, type v1 } from '@yoco/rpc';
import type { Redis } from 'ioredis';
import { redisTarget, serverSecurity, templateSealer } from '@yoco/service';
import { contextFrom, inSpan } from '@yoco/telemetry';
import type { ShardConfig } from './config.js';
import { WrongShardError } from './errors/index.js';
import { caughtUp, ShardTopology, type EpochView } from './shard-topology.js';

export const MAX_TOP_K = 1000;
/** Queries one Search call may carry (each is scanned as its own query, batched with the others). */
export const MAX_SEARCH_QUERIES = 32;

type SearchRequest = v1.ShardSearchRequest__Output;
type ScoreSubjectRequest = v1.ShardScoreSubjectRequest__Output;

interface SearchContext {
  deadline: number;
  signal?: AbortSignal;
  /** The stream or peer the call came from. */
  lane: string;
}

/**
 * LOADING: the first load; RELOADING: it knows it missed changes; HEAD_MISMATCH: not the cluster's head;
 * SURPLUS: its index is beyond k in every epoch in play (nothing to serve, safe to delete). Only SERVING answers.
 */
export type ShardState = 'LOADING' | 'SERVING' | 'RELOADING' | 'HEAD_MISMATCH' | 'SURPLUS' | 'DRAINING';

/** One head's rows: the shard's own, or a rollout's beside it (each follows the stream for its slots). */
interface Lane {
  head: Head;
  follower: SliceFollower;
  batcher: Batcher<Query, SubjectMatch[]>;
}

interface Query {
  query: Float32Array;
  k: number;
  /** Only the slots of the epoch asked for (while the shard holds two epochs' slots). */
  mask: SlotMask | undefined;
}


/** A unary call's context: its deadline (DEFAULT_CALL_TIMEOUT_MS when the caller set none), aborted when the caller cancels. */
function unaryContext(call: grpc.ServerUnaryCall<unknown, unknown>): SearchContext {
  const controller = new AbortController();
  call.once('cancelled', () => controller.abort());
  return { deadline: deadlineFrom(call.getDeadline()), signal: controller.signal, lane: call.getPeer() };
}

const toMatch = (m: SubjectMatch) => ({ subjectId: m.subjectId, templateId: m.templateId, score: m.score, logit: m.logit });

const streamMs = (id: string) => Number(id.split('-')[0]);

/**
 * One shard replica: loads the slots shard `index` of `count` owns, follows the
 * change stream, and answers Search / ScoreSubject / Status over gRPC.
 */
export class ShardWorker {
  readonly metrics = new ServiceMetrics('shard');
  private readonly latency = new LatencyWindow();
  private readonly topology: ShardTopology;
  private readonly redis: Redis;
  private readonly store: GalleryStore;
  private server: RpcServer | undefined;
  private batcher: Batcher<Query, SubjectMatch[]> | undefined;
  private follower: SliceFollower | undefined;
  private closing: Promise<void> | undefined;
  /** Set when the store's cluster head is another one: this shard must not be merged with the others. */
  private headMismatch: string | undefined;
  private providersChecked = false;
  private readonly searchQueries: Histogram;
  private readonly events: Record<FollowerEvent, Counter | undefined>;
  private readonly dropped: Counter<'reason'>;
  private readonly faults: Counter;

  /** Heads other than the serving one: a rollout's, loading beside it, or the one a switch replaced, until it retires. */
  private readonly others = new Map<string, Lane>();
  /** What an epoch without a head of its own runs: the head the store's meta names (the one this shard started with). */
  private baseHeadId = '';
  private reconciling: Promise<void> = Promise.resolve();
  private readonly topologyStore: TopologyStore;

  constructor(private readonly config: ShardConfig, private head: Head, private readonly logger: Logger) {
    if (head.dim !== config.dim && !config.headPath) throw new Error(`head dim ${head.dim} does not match YOCO_DIM ${config.dim}`);
    this.redis = connectRedis(redisTarget(config), 'follower', (err) => logger.debug({ err: err.message }, 'redis connection error'));
    this.store = new GalleryStore(this.redis, { prefix: config.prefix, dim: head.dim, sealer: templateSealer(config) });
    this.topologyStore = new TopologyStore(this.redis, config.prefix);
    this.topology = new ShardTopology({
      index: config.index,
      seedK: config.count,
      store: this.topologyStore,
      pollMs: config.topologyPollMs,
      retireMs: config.epochRetireMs,
      logger,
      onChange: () => this.topologyChanged(),
    });
    const registers = [this.metrics.registry];
    const self = this;
    const slice = () => self.follower?.slice;
    const gauge = (name: string, help: string, value: () => number | undefined) =>
      new Gauge({ name, help, registers, collect() { this.set(value() ?? 0); } });
    gauge('yoco_shard_templates', 'templates held', () => slice()?.templates);
    gauge('yoco_shard_subjects', 'subjects held', () => slice()?.subjects);
    gauge('yoco_shard_rows', 'rows in the scorer, dead ones included', () => slice()?.rows);
    gauge('yoco_shard_dead_rows', 'rows of removed or replaced templates not compacted yet', () => slice()?.dead);
    gauge('yoco_shard_capacity_rows', 'the most rows the scorer can hold', () => slice()?.scorer.capacity);
    gauge('yoco_shard_memory_bytes', "bytes the scorer's rows take (wasm memory for the factorized engine)", () => scorerBytes(slice()));
    gauge('yoco_shard_serving', '1 when the shard answers searches (state SERVING)', () => (this.state === 'SERVING' ? 1 : 0));
    gauge('yoco_shard_search_queue_depth', 'queries waiting to be scanned', () => self.batcher?.depth);
    gauge('yoco_shard_staleness_seconds', 'time since the shard last confirmed it held every change in the stream', () => {
      const s = self.follower?.stalenessMs;
      return s === undefined || !Number.isFinite(s) ? undefined : s / 1000;
    });
    gauge('yoco_shard_owned_slots', 'slots held (both epochs\' while the shard count changes)', () => self.follower?.held);
    gauge('yoco_shard_topology_epoch', 'the current topology epoch this shard knows', () => self.topology.current?.epoch);
    new Gauge({
      name: 'yoco_shard_watermark_lag_seconds',
      help: 'time between the newest change in Redis and the newest change this shard applied; while Redis cannot be read, the age of its view',
      registers,
      async collect() {
        const f = self.follower;
        if (!f || f.state === 'idle') return;
        const info = self.redis.status === 'ready' ? await self.store.streamInfo().catch(() => undefined) : undefined;
        // Unreachable: the newest change is unknown, and the view is at least this old.
        if (!info) this.set(f.stalenessMs / 1000);
        else this.set(Math.max(0, (streamMs(info.lastId) - streamMs(f.watermark)) / 1000));
      },
    });
    this.searchQueries = new Histogram({
      name: 'yoco_shard_search_batch_size',
      help: 'queries scanned together in one pass',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    const counter = (name: string, help: string) => new Counter({ name, help, registers });
    this.events = {
      reload: counter('yoco_shard_reloads_total', 'loads of the owned slots after the first (lost changes, a change that could not be applied, a scorer fault)'),
      compaction: counter('yoco_shard_compactions_total', 'compactions (dead rows dropped into a new slice)'),
      'change-failed': counter('yoco_shard_change_failures_total', 'attempts at applying a change that failed for another reason than Redis being down'),
      'bad-template': counter('yoco_shard_bad_templates_total', 'stored template records that could not be used and were skipped'),
      'rows-refused': counter('yoco_shard_rows_refused_total', 'templates not held because the scorer was full'),
      'stream-error': counter('yoco_shard_stream_errors_total', 'failed reads of the change stream (Redis unreachable)'),
      swap: undefined,
      'slots-gained': undefined,
      'slots-dropped': counter('yoco_shard_slot_drops_total', 'times slots the shard no longer owns (after a topology switch) were dropped'),
    };
    this.dropped = new Counter({ name: 'yoco_shard_search_dropped_total', help: 'queries not scanned: deadline passed, cancelled, or queue full', labelNames: ['reason'], registers });
    this.faults = counter('yoco_shard_scorer_faults_total', 'projections or kernel runs that failed');
  }

  /** One line the launcher (and people) can read: where this shard listens. */
  readyFields(): Record<string, unknown> {
    return { grpcPort: this.port, healthPort: this.server?.healthPort || undefined, index: this.config.index, count: this.topology.current?.k ?? this.config.count };
  }

  get port(): number {
    return this.server?.port ?? 0;
  }

  get state(): ShardState {
    if (this.closing) return 'DRAINING';
    switch (this.follower?.state) {
      case 'serving':
        return this.headMismatch ? 'HEAD_MISMATCH' : this.topology.surplus ? 'SURPLUS' : 'SERVING';
      case 'reloading':
        return 'RELOADING';
      case 'stopped':
        return 'DRAINING';
      default:
        return 'LOADING';
    }
  }

  /** Binds the server first (status answers LOADING at once), then loads and starts serving. */
  async start(): Promise<void> {
    this.server = this.bindServer();
    await this.server.start();
    const loadDelay = failpointMs('shard.load-delay-ms');
    if (loadDelay > 0) await sleep(loadDelay);
    await this.topology.start();
    await this.adoptTopologyHead();
    await this.checkStore();
    this.baseHeadId = (await this.store.storedHead()) || this.head.id;
    const follower = await this.createFollower(this.head, this.slotsFor(this.head.id));
    this.follower = follower;
    this.batcher = this.createBatcher(follower);
    const t = Date.now();
    await follower.load();
    follower.follow();
    this.server.setServing(this.state === 'SERVING');
    // A rollout already in progress: its head loads beside this one.
    this.topologyChanged();
    const s = follower.slice;
    this.logger.info({ templates: s.templates, subjects: s.subjects, slots: follower.held, epoch: this.topology.current?.epoch, k: this.topology.current?.k, ms: Date.now() - t, port: this.port, state: this.state }, 'shard serving');
  }

  private bindServer(): RpcServer {
    const { Shard } = loadProtos();
    const dim = this.head.dim;
    return new RpcServer({
      address: this.config.grpcAddress,
      ...serverSecurity(this.config),
      logger: this.logger,
      metrics: this.metrics,
      // A Search carries at most MAX_SEARCH_QUERIES queries, as floats or raw bytes (or, wrongly, both).
      maxReceiveBytes: 2 * MAX_SEARCH_QUERIES * dim * 4 + 64 * 1024,
      // ListTemplates lists every template id the shard holds.
      maxSendBytes: 64 * 1024 * 1024,
      multiplexedLimits: { maxInflightPerStream: this.config.streamMaxInflight, maxInflight: this.config.serverMaxInflight },
      services: [
        bindService<v1.ShardHandlers>(
          SERVICE_NAMES.Shard,
          Shard.service,
          {
            Search: (req, call) => this.search(req, unaryContext(call)),
            ScoreSubject: (req, call) => this.scoreSubject(req, unaryContext(call)),
            Status: async () => this.status(),
            ListTemplates: async () => {
              const follower = this.listing();
              return { templates: follower.slice.entries(), watermark: follower.watermark };
            },
          },
          { SearchStream: (req, ctx) => this.search(req, { deadline: deadlineFrom(ctx.callerDeadline), signal: ctx.signal, lane: ctx.lane }) },
        ),
      ],
    });
  }

  /** A Redis that can tell lost changes, and the cluster's head on record: another one means this shard never serves. */
  private async checkStore(): Promise<void> {
    await this.store.checkServer();
    const { headId } = await this.store.checkMeta(this.head.id);
    if (headId && headId !== this.head.id) {
      this.headMismatch = `the cluster's head (in the store's meta) is ${headId}; this shard runs ${this.head.id}`;
      this.logger.error({ clusterHead: headId, head: this.head.id }, 'head mismatch: this shard will not serve');
    }
  }

  /** One reconcile at a time, in order; a failure is logged and the next change tries again. */
  private topologyChanged(): void {
    this.reconciling = this.reconciling
      .then(() => this.reconcile())
      .catch((err: Error) => this.logger.error({ err: err.message }, 'could not follow the topology; trying again at its next change'));
    this.server?.setServing(this.state === 'SERVING');
  }

  /**
   * After a rollout the topology names the cluster's head: a shard started
   * with the old one (its HEAD_PATH unchanged) loads the new one from the store
   * instead of refusing to serve.
   */
  private async adoptTopologyHead(): Promise<void> {
    const id = this.topology.current?.headId;
    if (!id || id === this.head.id) return;
    this.head = await this.headFromStore(id);
    this.logger.info({ head: id }, "running the topology's head from the store, not the configured one");
  }

  private async headFromStore(id: string): Promise<Head> {
    const bytes = await this.topologyStore.getHead(id);
    if (!bytes) throw new Error(`head ${id} is not in the store`);
    const head = parseHead(bytes);
    if (head.id !== id) throw new Error(`the head stored as ${id} is ${head.id}`);
    if (head.dim !== this.head.dim) throw new Error(`head ${id} takes ${head.dim}-wide vectors; this shard's store holds ${this.head.dim}`);
    return head;
  }

  /** The head an epoch runs. */
  private headOf(v: EpochView): string {
    return v.headId || this.baseHeadId;
  }

  /** The slots a head's rows must cover: those of every epoch in play that runs it. */
  private slotsFor(headId: string): number[] {
    const all = new Set<number>();
    for (const v of this.topology.epochs(true)) if (this.headOf(v) === headId) for (const s of v.slots) all.add(s);
    return [...all].sort((a, b) => a - b);
  }

  private laneOf(headId: string): Lane | undefined {
    if (headId === this.head.id) return this.follower && this.batcher ? { head: this.head, follower: this.follower, batcher: this.batcher } : undefined;
    return this.others.get(headId);
  }

  /**
   * Makes the heads held match the epochs in play: a rollout's head is loaded
   * beside the serving one (P recomputed from the raw vectors in Redis), takes
   * over once its epoch is current, and the replaced one is let go when its
   * epoch retires (or at once, for an aborted rollout).
   */
  private async reconcile(): Promise<void> {
    if (this.closing || !this.follower) return;
    const wanted = new Set(this.topology.epochs(true).map((v) => this.headOf(v)));
    // Only a head the topology names is in the store; an epoch without one runs the meta's, which a
    // shard of another head (HEAD_MISMATCH) does not have and must not pretend to.
    const named = new Set(this.topology.epochs(true).map((v) => v.headId).filter(Boolean));
    for (const id of wanted) {
      if (this.laneOf(id) || !named.has(id)) continue;
      const head = await this.headFromStore(id);
      const follower = await this.createFollower(head, this.slotsFor(id));
      const lane = { head, follower, batcher: this.createBatcher(follower) };
      this.others.set(id, lane);
      const t = Date.now();
      await follower.load();
      follower.follow();
      this.logger.info({ head: id, templates: follower.slice.templates, ms: Date.now() - t }, 'rollout head loaded beside the serving one');
    }
    const current = this.topology.current ? this.headOf(this.topology.current) : this.head.id;
    const incoming = this.others.get(current);
    if (incoming) {
      this.others.delete(current);
      this.others.set(this.head.id, { head: this.head, follower: this.follower, batcher: this.batcher! });
      [this.head, this.follower, this.batcher] = [incoming.head, incoming.follower, incoming.batcher];
      this.headMismatch = undefined;
      this.logger.info({ head: current }, 'serving the rolled-out head');
    }
    for (const [id, lane] of this.others) {
      if (wanted.has(id)) continue;
      this.others.delete(id);
      await lane.follower.stop();
      await lane.follower.slice.close();
      this.logger.info({ head: id }, 'head let go');
    }
    this.follower.setSlots(this.slotsFor(this.head.id));
    for (const [id, lane] of this.others) lane.follower.setSlots(this.slotsFor(id));
    this.server?.setServing(this.state === 'SERVING');
  }

  private async createFollower(head: Head, slots: number[]): Promise<SliceFollower> {
    let follower: SliceFollower | undefined;
    // ORT can fall back to CPU silently: a shard asked for a GPU either runs on it or does not start.
    if (!this.providersChecked) {
      await assertProviders(this.config.executionProviders);
      this.providersChecked = true;
    }
    const scorer = await createScorer(head, {
      engine: this.config.engine,
      int8: this.config.engine === 'int8' ? { minRows: this.config.int8MinRows, simd: this.config.int8Simd } : undefined,
      kernelThreads: this.config.kernelThreads || undefined,
      threads: this.config.ortThreads,
      executionProviders: this.config.executionProviders,
      maxRows: this.config.maxTemplates || undefined,
      onFault: (err, rows) => {
        this.faults.inc();
        this.logger.error({ err: err.message, rows }, 'scorer fault: the slice may be incomplete; reloading');
        follower?.requestReload(`the scorer lost ${rows} rows: ${err.message}`);
      },
    });
    const blockMs = this.config.followBlockMs;
    follower = new SliceFollower({
      store: this.store,
      slice: new GallerySlice(scorer),
      slots,
      // Its own connection (XREAD BLOCK holds it), with a timeout so a Redis that stops answering is noticed.
      blockingClient: this.redis.duplicate({ commandTimeout: blockMs + 5000 }),
      blockMs,
      maxChangeAttempts: this.config.maxChangeAttempts,
      compactFraction: this.config.compactFraction,
      compactMinDead: this.config.compactMinDead,
      onEvent: (event, detail) => {
        this.events[event]?.inc(event === 'rows-refused' ? Number(detail.count) : 1);
        if (event === 'swap' || event === 'slots-gained') this.logger.debug({ event, ...detail }, event);
        else if (event === 'compaction' || event === 'slots-dropped') this.logger.info({ event, ...detail }, event);
        else this.logger.warn({ event, ...detail }, 'change stream');
      },
      onState: (state) => {
        this.logger.info({ state: this.state, follower: state, head: head.id, reason: follower?.reason }, 'state');
        this.server?.setServing(this.state === 'SERVING');
      },
    });
    return follower;
  }

  /** Concurrent queries share one pass over the slice: each row block is read once for all of them. */
  private createBatcher(follower: SliceFollower): Batcher<Query, SubjectMatch[]> {
    return new Batcher<Query, SubjectMatch[]>(
      async (batch) => {
        // A shard that found out it is stale while these waited does not answer from the old slice
        // (one that is draining still answers what it took in).
        if (follower.state !== 'serving') throw this.refusal();
        const k = Math.max(...batch.map((b) => b.k));
        const all = await follower.use((slice) => slice.searchMany(batch.map((b) => b.query), k, batch.map((b) => b.mask)));
        return all.map((matches, i) => matches.slice(0, batch[i].k));
      },
      { maxBatch: this.config.searchMaxBatch, maxDelayMs: this.config.searchMaxDelayMs, maxQueue: this.config.searchMaxQueue },
      (size) => this.searchQueries.observe(size),
      (reason: DropReason) => this.dropped.inc({ reason }),
    );
  }

  status() {
    const p95 = this.latency.percentile(95);
    const p50 = this.latency.percentile(50);
    const f = this.follower;
    const slice = f?.slice;
    const staleness = f?.stalenessMs ?? Infinity;
    return {
      index: this.config.index,
      count: this.topology.current?.k ?? this.config.count,
      state: this.state,
      templates: slice?.templates ?? 0,
      subjects: slice?.subjects ?? 0,
      ownedSlots: f?.held ?? 0,
      watermark: f?.watermark ?? '',
      dim: this.head.dim,
      headId: this.head.id,
      modelId: this.config.modelId,
      engine: this.config.engine,
      p95Ms: Number.isNaN(p95) ? 0 : p95,
      p50Ms: Number.isNaN(p50) ? 0 : p50,
      stalenessMs: Number.isFinite(staleness) ? staleness : -1,
      reason: this.state === 'SERVING' ? '' : (this.headMismatch ?? f?.reason ?? ''),
      rows: slice?.rows ?? 0,
      capacity: Number.isFinite(slice?.scorer.capacity) ? slice!.scorer.capacity : 0,
      deadRows: slice?.dead ?? 0,
      lastError: f?.lastError ?? '',
      memoryBytes: scorerBytes(slice) ?? 0,
      ...kernelOf(slice),
      epochs: this.topology.epochs().map((v) => ({
        epoch: v.epoch,
        count: v.k,
        slotsLoaded: f?.heldOf(v.slots) ?? 0,
        slotsTotal: v.slots.length,
        ready: this.readyFor(v),
      })),
    };
  }

  /** Whether this replica can answer for an epoch: it has a part in it, holds all of it, serves, and has caught up. */
  private readyFor(v: EpochView): boolean {
    const f = this.laneOf(this.headOf(v))?.follower;
    return !!f && v.slots.length > 0 && this.state === 'SERVING' && f.state === 'serving' && f.holdsAll(v.slots) && caughtUp(f.watermark, v.fromId);
  }

  /**
   * The epoch a call is for, and the mask of its slots when this replica holds
   * more (while the shard count changes). Refused when it cannot answer for it.
   */
  private epochOf(expected: v1.ExpectedShard__Output | null | undefined): { view: EpochView; mask: SlotMask | undefined; lane: Lane } {
    const view = this.topology.viewFor(Number(expected?.epoch ?? 0), expected?.count ?? 0);
    const i = this.config.index;
    if (view.slots.length === 0) throw new UnavailableError(`shard ${i} has no part in epoch ${view.epoch} (k=${view.k})`, 'SURPLUS');
    // Each epoch is answered by its own head's rows only: never one head's scores for another's epoch.
    const lane = this.laneOf(this.headOf(view));
    if (!lane || lane.follower.state !== 'serving') throw new UnavailableError(`shard ${i} is loading head ${this.headOf(view)} for epoch ${view.epoch}`, 'LOADING');
    const follower = lane.follower;
    const held = follower.heldOf(view.slots);
    if (held < view.slots.length) throw new UnavailableError(`shard ${i} is loading epoch ${view.epoch}'s slots (${held} of ${view.slots.length})`, 'LOADING');
    return { view, lane, mask: follower.held > view.slots.length ? view.mask : undefined };
  }

  private ready(): SliceFollower {
    if (this.state === 'SERVING') return this.follower!;
    throw this.refusal();
  }

  /** Serving, or SURPLUS (ListTemplates still answers: it holds nothing). */
  private listing(): SliceFollower {
    if (this.state === 'SURPLUS') return this.follower!;
    return this.ready();
  }

  /** Why this shard does not answer now. */
  private refusal(): UnavailableError | FailedPreconditionError {
    const i = this.config.index;
    switch (this.state) {
      case 'DRAINING':
        return new UnavailableError(`shard ${i} is shutting down`);
      case 'RELOADING':
        return new UnavailableError(`shard ${i} knows it missed changes and is reloading its slots (${this.follower?.reason ?? ''}): ask another replica`, 'STALE');
      case 'HEAD_MISMATCH':
        return new FailedPreconditionError(`shard ${i} does not run the cluster's head: ${this.headMismatch}`, 'HEAD_MISMATCH');
      case 'SURPLUS':
        return new UnavailableError(`shard ${i} is beyond the topology's k=${this.topology.current?.k}: it serves nothing and may be removed`, 'SURPLUS');
      default:
        return new UnavailableError(`shard ${i} is loading its slots`, 'LOADING');
    }
  }

  private checkIndex(expected: number | undefined): void {
    if (expected !== undefined && expected !== this.config.index) throw new WrongShardError(expected, this.config.index);
  }

  private async consistent(follower: SliceFollower, token: string, ctx: SearchContext): Promise<void> {
    if (token) await follower.waitFor(token, ctx.deadline - Date.now(), ctx.signal);
  }

  private search(req: SearchRequest, ctx: SearchContext): Promise<v1.ShardSearchResponse> {
    return inSpan('Shard/Search', contextFrom(req.traceparent), 'server', (span) => {
      span.setAttribute('yoco.shard.index', this.config.index);
      return this.searchIn(req, ctx);
    });
  }

  private async searchIn(req: SearchRequest, ctx: SearchContext): Promise<v1.ShardSearchResponse> {
    this.ready();
    this.checkIndex(req.expectedShard?.index);
    const { view, mask, lane } = this.epochOf(req.expectedShard);
    const follower = lane.follower;
    const started = performance.now();
    const dim = this.head.dim;
    // The Shard API is a boundary of its own (any peer can call it): the queries are checked here.
    const { vectors: queries, count: n } = decodeVectors(req.queriesF32, req.queries, dim, 'query');
    if (n > MAX_SEARCH_QUERIES) throw new InvalidArgumentError(`${n} queries in one Search; at most ${MAX_SEARCH_QUERIES}`, 'QUERIES');
    const k = req.topK || 10;
    if (k > MAX_TOP_K) throw new InvalidArgumentError(`top_k ${k} is above ${MAX_TOP_K}`, 'TOP_K');
    await this.consistent(follower, req.consistencyToken, ctx);
    if (failpointMs('shard.search-delay-ms') > 0) await sleep(failpointMs('shard.search-delay-ms'), ctx.signal);
    if (ctx.signal?.aborted) throw new CancelledError();
    // Turns are taken per caller's caller: the stream (or peer) the call came on, and the lane it names within it.
    const submit = { deadline: ctx.deadline, signal: ctx.signal, lane: `${ctx.lane}/${req.lane ?? ''}` };
    const results = await Promise.all(
      Array.from({ length: n }, async (_, i) => ({ matches: (await lane.batcher.submit({ query: queries.subarray(i * dim, (i + 1) * dim), k, mask }, submit)).map(toMatch) })),
    );
    const searchMs = performance.now() - started;
    this.latency.add(searchMs);
    return {
      results,
      shardIndex: this.config.index,
      templates: mask ? follower.slice.templatesIn(view.slots) : follower.slice.templates,
      watermark: follower.watermark,
      searchMs,
      stalenessMs: finiteMs(follower.stalenessMs),
    };
  }

  private async scoreSubject(req: ScoreSubjectRequest, ctx: SearchContext): Promise<v1.ShardScoreSubjectResponse> {
    this.ready();
    this.checkIndex(req.expectedShard?.index);
    assertSubjectId(req.subjectId);
    const { mask, lane } = this.epochOf(req.expectedShard);
    const follower = lane.follower;
    const { vectors: query } = decodeVectors(req.queryF32, req.query, this.head.dim, 'query', 1);
    await this.consistent(follower, req.consistencyToken, ctx);
    const best = await follower.use((slice) => (slice.holds(req.subjectId, mask) ? slice.scoreSubject(req.subjectId, query) : Promise.resolve(null)));
    const common = { shardIndex: this.config.index, stalenessMs: finiteMs(follower.stalenessMs), watermark: follower.watermark };
    return best ? { found: true, best: toMatch(best), ...common } : { found: false, ...common };
  }

  /** Stops taking calls, drains in-flight ones, then releases everything. Idempotent. */
  stop(): Promise<void> {
    this.closing ??= (async () => {
      this.topology.stop();
      await this.server?.shutdown(this.config.shutdownGraceMs);
      await this.follower?.stop();
      await this.follower?.slice.close();
      for (const lane of this.others.values()) {
        await lane.follower.stop();
        await lane.follower.slice.close();
      }
      this.redis.disconnect();
    })();
    return this.closing;
  }
}

function finiteMs(ms: number): number {
  return Number.isFinite(ms) ? ms : 1e12;
}

function scorerBytes(slice: GallerySlice | undefined): number | undefined {
  const s = slice?.scorer as { memoryBytes?: number } | undefined;
  return s?.memoryBytes;
}

/** The scan's instruction set, why relaxed SIMD is not used, and what a template costs (for Status). */
function kernelOf(slice: GallerySlice | undefined): { kernel: string; relaxedSimd: string; bytesPerTemplate: number } {
  const s = slice?.scorer as { engine?: string; int8Simd?: string; relaxedProblem?: string } | undefined;
  const kernel = s?.engine === 'factorized' ? 'float32 simd128' : s?.engine === 'int8' ? `int8 ${s.int8Simd === 'relaxed' ? 'relaxed-simd' : 'simd128'}` : s?.engine === 'resident' ? 'float32 onnxruntime' : '';
  const bytes = scorerBytes(slice);
  const rows = slice?.rows ?? 0;
  return { kernel, relaxedSimd: s?.relaxedProblem ?? '', bytesPerTemplate: bytes && rows > 0 ? Math.round(bytes / rows) : 0 };
}
