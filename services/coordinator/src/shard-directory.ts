import { lookup } from 'node:dns/promises';
import type * as grpc from '@grpc/grpc-js';
import { LatencyWindow, splitAddress, getErrorMessage } from '@yoco/common';
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
  dns: string;
  refreshMs: number;
  logger: Logger;
  /**
   * The cluster's head id on record (the store's meta), read each refresh:
   * only replicas running it are merged. Resolves '' when none is recorded;
   * a failure keeps the last one known.
   */
  clusterHead?: () => Promise<string>;
}

/**
 * Knows every shard replica: from a static list or a DNS name re-resolved
 * each refresh. Each replica reports its own index and k in Status, so the
 * same code serves a laptop and a StatefulSet.
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
    if (changed) this.epoch++;
  }

  private async addresses(): Promise<string[]> {
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

  /** Whether a replica runs the cluster's head (any head while none is on record). */
  private headOk(r: Replica): boolean {
    return !this.clusterHead || r.status?.headId === this.clusterHead;
  }

  /**
   * k: what the SERVING replicas of the cluster's head report (the most
   * common value while a resize is in progress); 0 when none serves. A
   * replica still loading, or with another head, has no say.
   */
  get count(): number {
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
    const k = this.count;
    if (k > 0 && r.status.count !== k) return `reports k=${r.status.count}; the cluster has k=${k}`;
    if (r.status.state !== 'SERVING') return `state ${r.status.state}${r.status.reason ? `: ${r.status.reason}` : ''}`;
    return '';
  }

  /**
   * Replicas of one shard index that run the cluster's head and agree on k:
   * the healthy first, then the fresher, then the least busy; unhealthy ones
   * last, as a last resort (a failed call marks a replica unhealthy until
   * the next poll).
   */
  candidates(index: number): Replica[] {
    const k = this.count;
    const list = [...this.replicas.values()].filter((r) => r.status?.index === index && r.status.count === k && this.headOk(r));
    // Rotate before the stable sort so equally good replicas take turns.
    const turn = this.turn++ % Math.max(1, list.length);
    return [...list.slice(turn), ...list.slice(0, turn)].sort(
      (a, b) => Number(b.healthy) - Number(a.healthy) || Number(isFresh(b)) - Number(isFresh(a)) || a.inflight - b.inflight,
    );
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
