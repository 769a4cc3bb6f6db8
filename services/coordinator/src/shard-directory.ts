import { lookup } from 'node:dns/promises';
import type * as grpc from '@grpc/grpc-js';
import { LatencyWindow, splitAddress, getErrorMessage } from '@yoco/common';
import { readFile } from 'node:fs/promises';
import { compareStreamIds, type Topology } from '@yoco/gallery';
import { DIRECT_CLIENT_OPTIONS, isServiceError, loadProtos, makeClient, MultiplexedChannel, Status, unary, type Logger, type MultiplexedCallOptions, type ClientTls, type v1 } from '@yoco/rpc';

export type ShardStatusReply = v1.ShardStatusResponse__Output;

/** A replica whose view is older than this counts as stale when choosing between replicas (its follower reads the stream every second). */
const FRESH_MS = 3000;

export interface Replica {
  address: string;
  client: v1.ShardClient;
  /** Search calls over one open SearchStream (one message each way per call). */
  searchStream: MultiplexedChannel<v1.ShardSearchRequest, v1.ShardSearchResponse__Output>;
  /** The replica answered SearchStream with UNIMPLEMENTED (an older build): unary Search instead. */
  unarySearch: boolean;
  status: ShardStatusReply | undefined;
  /** Last poll or call succeeded and the replica said SERVING. */
  healthy: boolean;
  /** The last poll got an answer, and no call has failed with UNAVAILABLE since. */
  reachable: boolean;
  lastError: string | undefined;
  inflight: number;
  /** Its view's age as last reported (a Search reply or a status poll), and when that was. */
  stalenessMs: number;
  stalenessAt: number;
}

export interface DirectoryOptions {
  /** TLS to the shards (mutual, with the coordinator's certificate); plaintext when absent. */
  tls?: ClientTls;
  /** The shards' certificate name, checked instead of the dialled address (a pod IP from SHARD_DNS). */
  tlsName?: string;
  addresses: string[];
  /** A file listing the replicas' addresses (comma or line separated), re-read each refresh: the local launcher's, as it starts and stops shards. */
  addressesFile?: string;
  dns: string;
  refreshMs: number;
  logger: Logger;
  /**
   * The cluster's head id on record (the store's meta), read each refresh:
   * only replicas running it are merged. Resolves '' when none is recorded;
   * a failure keeps the last one known.
   */
  clusterHead?: () => Promise<string>;
  /** The topology on record, read each refresh; a failure keeps the last one known. */
  topology?: () => Promise<Topology | undefined>;
  /**
   * Makes the change in progress current (a Lua CAS naming its epoch, so two
   * coordinators cannot both switch); called once every shard index of the
   * next epoch has a replica ready for it.
   */
  commit?: (epoch: number) => Promise<Topology>;
}

/** An epoch the coordinator routes by: its number and k (epoch 0: no topology on record, shards' own k). */
export interface Route {
  epoch: number;
  k: number;
}

/** One shard index's progress towards the next epoch: its replica furthest along. */
export interface IndexProgress {
  index: number;
  address: string;
  slotsLoaded: number;
  slotsTotal: number;
  ready: boolean;
}

/**
 * Knows every shard replica: from a static list, a file, or a DNS name
 * re-resolved each refresh. Each replica reports its own index and, per
 * topology epoch, whether it can answer for it; the topology itself (which
 * epoch and k to route by) is the store's.
 */
export class ShardDirectory {
  private readonly replicas = new Map<string, Replica>();
  /** Successful call latencies per shard index, measured here (hedge delays). */
  private readonly latency = new Map<number, LatencyWindow>();
  /** The shards' own Search times for those calls (transport excluded). */
  private readonly searchTime = new Map<number, LatencyWindow>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  epoch = 0;
  private turn = 0;
  /** The cluster's head id as the store records it ('' until known). */
  clusterHead = '';
  /** The topology as last read (undefined until one is on record). */
  topology: Topology | undefined;

  constructor(private readonly options: DirectoryOptions) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const r of this.replicas.values()) closeReplica(r);
    this.replicas.clear();
  }

  /** Re-resolves addresses and polls every replica's Status; one refresh at a time. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const addresses = await this.addresses();
    let changed = false;
    for (const a of addresses) {
      if (this.replicas.has(a)) continue;
      const { Shard } = loadProtos();
      // ShardCaller fails over itself: no transparent retries underneath it. A search sends one
      // query and gets one top-k back (at most 1000 matches): a few hundred KiB either way.
      const client = makeClient(Shard, a, { ...DIRECT_CLIENT_OPTIONS, 'grpc.max_send_message_length': 1 << 20, 'grpc.max_receive_message_length': 4 << 20, ...(this.options.tlsName ? { 'grpc.ssl_target_name_override': this.options.tlsName } : {}) }, { tls: this.options.tls });
      const searchStream = new MultiplexedChannel<v1.ShardSearchRequest, v1.ShardSearchResponse__Output>(client, 'SearchStream');
      this.replicas.set(a, { address: a, client, searchStream, unarySearch: false, status: undefined, healthy: false, reachable: false, lastError: 'not polled yet', inflight: 0, stalenessMs: Infinity, stalenessAt: 0 });
      changed = true;
    }
    for (const [a, r] of this.replicas) {
      if (addresses.includes(a)) continue;
      closeReplica(r);
      this.replicas.delete(a);
      changed = true;
    }
    await Promise.all([...this.replicas.values()].map((r) => this.poll(r)));
    if (this.options.clusterHead) {
      this.clusterHead = await this.options.clusterHead().catch((err: Error) => {
        this.options.logger.debug({ err: err.message }, "cannot read the cluster's head id; keeping the last one known");
        return this.clusterHead;
      });
    }
    if (this.options.topology) {
      const before = this.topology?.epoch;
      this.topology = await this.options.topology().catch((err: Error) => {
        this.options.logger.debug({ err: err.message }, 'cannot read the topology; keeping the last one known');
        return this.topology;
      });
      if (this.topology?.epoch !== before) changed = true;
      await this.switchIfReady();
    }
    if (changed) this.epoch++;
  }

  /** The change in progress becomes current once every shard index of it has a replica ready for it. */
  private async switchIfReady(): Promise<void> {
    const next = this.topology?.next;
    if (!next || !this.options.commit) return;
    const progress = this.progress();
    if (progress.length !== next.k || !progress.every((p) => p.ready)) return;
    try {
      this.topology = await this.options.commit(next.epoch);
      this.options.logger.info({ epoch: this.topology.epoch, k: this.topology.k, ms: Date.now() - next.startedAt }, 'topology switched: Identify is answered by the new epoch');
      this.epoch++;
    } catch (err) {
      this.options.logger.warn({ err: getErrorMessage(err) }, 'could not switch the topology; trying again at the next refresh');
    }
  }

  /** The epoch Identify is routed by now (each call keeps the one it started with). */
  route(): Route {
    const t = this.topology;
    return t ? { epoch: t.epoch, k: t.k } : { epoch: 0, k: this.votedCount() };
  }

  /** Whether a replica can answer for an epoch: it says so (older builds without epochs: its k is the epoch's). */
  readyFor(r: Replica, route: Route, fromId?: string): boolean {
    const s = r.status;
    if (!s || s.state !== 'SERVING') return false;
    if (route.epoch === 0 || s.epochs.length === 0) return s.count === route.k;
    const e = s.epochs.find((x) => Number(x.epoch) === route.epoch);
    return !!e && e.ready && (!fromId || compareStreamIds(s.watermark, fromId) >= 0);
  }

  /** Each shard index of the change in progress: its replica furthest along (empty when none is in progress). */
  progress(): IndexProgress[] {
    const next = this.topology?.next;
    if (!next) return [];
    const route = { epoch: next.epoch, k: next.k };
    return Array.from({ length: next.k }, (_, index) => {
      let best: IndexProgress = { index, address: '', slotsLoaded: 0, slotsTotal: 0, ready: false };
      for (const r of this.replicas.values()) {
        if (r.status?.index !== index || !r.reachable || !this.headOk(r)) continue;
        const e = r.status.epochs.find((x) => Number(x.epoch) === next.epoch);
        const mine = { index, address: r.address, slotsLoaded: e?.slotsLoaded ?? 0, slotsTotal: e?.slotsTotal ?? 0, ready: this.readyFor(r, route, next.fromId) };
        if (Number(mine.ready) - Number(best.ready) > 0 || (mine.ready === best.ready && mine.slotsLoaded > best.slotsLoaded) || !best.address) best = mine;
      }
      return best;
    });
  }

  private async addresses(): Promise<string[]> {
    if (this.options.addressesFile && !this.options.dns) {
      try {
        const listed = (await readFile(this.options.addressesFile, 'utf8')).split(/[\s,]+/).filter(Boolean).sort();
        // An empty file is one caught mid-write far more often than a cluster meant to have no shards,
        // and dropping every replica would leave nothing to answer with either way.
        if (listed.length > 0 || this.replicas.size === 0) return listed;
        this.options.logger.warn({ file: this.options.addressesFile }, 'the shard address file is empty; keeping the last known replicas');
        return [...this.replicas.keys()];
      } catch (err) {
        this.options.logger.warn({ err: getErrorMessage(err), file: this.options.addressesFile }, 'cannot read the shard address file; keeping the last known replicas');
        return [...this.replicas.keys()];
      }
    }
    if (!this.options.dns) return this.options.addresses;
    const [host, port] = splitAddress(this.options.dns);
    try {
      const found = await lookup(host, { all: true });
      return found.map((f) => (f.family === 6 ? `[${f.address}]:${port}` : `${f.address}:${port}`)).sort();
    } catch (err) {
      this.options.logger.warn({ err: getErrorMessage(err), dns: this.options.dns }, 'shard DNS lookup failed; keeping the last known replicas');
      return [...this.replicas.keys()];
    }
  }

  private async poll(r: Replica): Promise<void> {
    try {
      const s = await unary(r.client, 'Status', {}, { deadline: Date.now() + Math.max(500, this.options.refreshMs) });
      const moved = r.status && (r.status.index !== s.index || r.status.count !== s.count);
      r.status = s;
      r.reachable = true;
      r.healthy = s.state === 'SERVING';
      r.lastError = r.healthy ? undefined : `state ${s.state}`;
      this.noteStaleness(r, s.stalenessMs < 0 ? Infinity : s.stalenessMs);
      if (moved) this.epoch++;
    } catch (err) {
      r.healthy = false;
      r.reachable = false;
      r.lastError = (err as grpc.ServiceError).details || getErrorMessage(err);
    }
  }

  /** Shard.Search on one replica: over its open stream, or unary where the replica has no SearchStream. */
  async search(r: Replica, request: v1.ShardSearchRequest, options: MultiplexedCallOptions): Promise<v1.ShardSearchResponse__Output> {
    if (!r.unarySearch) {
      try {
        return await r.searchStream.call(request, options);
      } catch (err) {
        if (!isServiceError(err) || err.code !== Status.UNIMPLEMENTED) throw err;
        r.unarySearch = true;
        this.options.logger.warn({ replica: r.address }, 'replica has no SearchStream (older build): using unary Search');
      }
    }
    return unary(r.client, 'Search', request, options);
  }

  /**
   * Whether a replica runs the cluster's head (any head while none is on
   * record). A replica that reports topology epochs answers each epoch with
   * that epoch's head (a rollout's beside its own), so its readiness per
   * epoch says it; only older builds are judged by the head they report.
   */
  private headOk(r: Replica): boolean {
    if (r.status?.epochs.length && r.status.state !== 'HEAD_MISMATCH') return true;
    return !this.clusterHead || r.status?.headId === this.clusterHead;
  }

  /** k of the epoch routed by now (0 when neither a topology nor a serving replica is known). */
  get count(): number {
    return this.route().k;
  }

  /**
   * Without a topology on record (a store the shards have not seeded yet):
   * what the SERVING replicas of the cluster's head report; 0 when none
   * serves. A replica still loading, or with another head, has no say.
   */
  private votedCount(): number {
    const votes = new Map<number, number>();
    for (const r of this.replicas.values()) {
      if (r.status?.state === 'SERVING' && this.headOk(r)) votes.set(r.status.count, (votes.get(r.status.count) ?? 0) + 1);
    }
    let best = 0;
    let bestVotes = 0;
    for (const [k, v] of votes) if (v > bestVotes || (v === bestVotes && k > best)) [best, bestVotes] = [k, v];
    return best;
  }

  private usableStatus(): ShardStatusReply | undefined {
    for (const r of this.replicas.values()) if (r.status?.state === 'SERVING' && this.headOk(r)) return r.status;
    for (const r of this.replicas.values()) if (r.status && this.headOk(r)) return r.status;
    return undefined;
  }

  /** The vector width the shards serve (0 when none answered). */
  get dim(): number {
    return this.usableStatus()?.dim ?? 0;
  }

  /** The head the merged answers come from: the cluster's on record, else the shards'. */
  get headId(): string {
    return this.clusterHead || (this.usableStatus()?.headId ?? '');
  }

  get modelId(): string {
    return this.usableStatus()?.modelId ?? '';
  }

  /** Why this coordinator does not ask the replica ('' when it does). */
  excluded(r: Replica): string {
    if (!r.status) return `not reachable: ${r.lastError ?? 'no status yet'}`;
    if (!this.headOk(r)) return `runs head ${r.status.headId}, not the cluster's head ${this.clusterHead}`;
    const route = this.route();
    if (r.status.state === 'SURPLUS' || (route.epoch > 0 && r.status.index >= route.k)) return `index ${r.status.index} is beyond k=${route.k} (epoch ${route.epoch})${r.status.state === 'SURPLUS' ? ': surplus, safe to remove' : ''}`;
    if ((route.epoch === 0 || r.status.epochs.length === 0) && r.status.count !== route.k) return `reports k=${r.status.count}; the cluster has k=${route.k}`;
    if (r.status.state !== 'SERVING') return `state ${r.status.state}${r.status.reason ? `: ${r.status.reason}` : ''}`;
    if (!this.readyFor(r, route)) return `not ready for epoch ${route.epoch} (k=${route.k}): still loading its slots`;
    return '';
  }

  /**
   * Replicas of one shard index that run the cluster's head and can answer
   * for the epoch routed by: the healthy first, then the fresher, then the
   * least busy; unhealthy ones last, as a last resort (a failed call marks a
   * replica unhealthy until the next poll).
   */
  candidates(index: number, route: Route = this.route()): Replica[] {
    const list = [...this.replicas.values()].filter((r) => r.status?.index === index && this.headOk(r) && (this.readyFor(r, route) || (!r.healthy && this.couldServe(r, route))));
    // Rotate before the stable sort so equally good replicas take turns.
    const turn = this.turn++ % Math.max(1, list.length);
    return [...list.slice(turn), ...list.slice(0, turn)].sort(
      (a, b) => Number(b.healthy) - Number(a.healthy) || Number(isFresh(b)) - Number(isFresh(a)) || a.inflight - b.inflight,
    );
  }

  /** A replica marked failed by a call since its last poll, which at that poll could answer for the epoch: a last resort. */
  private couldServe(r: Replica, route: Route): boolean {
    const s = r.status;
    if (!s) return false;
    if (route.epoch === 0 || s.epochs.length === 0) return s.count === route.k;
    return s.epochs.some((x) => Number(x.epoch) === route.epoch && x.ready);
  }

  /** What a replica said of its view's age (a Search reply, a poll). */
  noteStaleness(r: Replica, ms: number): void {
    r.stalenessMs = ms;
    r.stalenessAt = Date.now();
  }

  all(): Replica[] {
    return [...this.replicas.values()];
  }

  markFailed(r: Replica, reason: string): void {
    r.healthy = false;
    r.reachable = false;
    r.lastError = reason;
  }

  markOk(r: Replica): void {
    if (r.status?.state === 'SERVING') r.healthy = true;
  }

  recordLatency(index: number, ms: number): void {
    windowOf(this.latency, index).add(ms);
  }

  /** What a shard reported spending inside a Search this coordinator made (its own clock). */
  recordSearchTime(index: number, ms: number): void {
    windowOf(this.searchTime, index).add(ms);
  }

  /** The recent p95 of a shard's calls (undefined until enough samples). */
  p95(index: number): number | undefined {
    const w = this.latency.get(index);
    return w && w.count >= 10 ? w.percentile(95) : undefined;
  }

  /** Recent p50s of a shard index's calls and of its own Search time (0 before any call). */
  p50s(index: number): { callP50Ms: number; searchP50Ms: number } {
    const p50 = (w: LatencyWindow | undefined) => (w && w.count > 0 ? w.percentile(50) : 0);
    return { callP50Ms: p50(this.latency.get(index)), searchP50Ms: p50(this.searchTime.get(index)) };
  }
}

/** A replica's view is fresh when its last report said so (a report is aged by the time since it came). */
function isFresh(r: Replica): boolean {
  return r.stalenessMs + (Date.now() - r.stalenessAt) <= FRESH_MS;
}

function windowOf(windows: Map<number, LatencyWindow>, index: number): LatencyWindow {
  let w = windows.get(index);
  if (!w) windows.set(index, (w = new LatencyWindow(200)));
  return w;
}

function closeReplica(r: Replica): void {
  r.searchStream.close();
  r.client.close();
}
