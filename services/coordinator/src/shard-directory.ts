import { lookup } from 'node:dns/promises';
import type * as grpc from '@grpc/grpc-js';
import { LatencyWindow, splitAddress } from '@yoco/common';
import { DIRECT_CLIENT_OPTIONS, loadProtos, makeClient, MultiplexedChannel, Status, unary, type Logger, type MultiplexedCallOptions } from '@yoco/rpc';

export interface ShardStatusReply {
  index: number;
  count: number;
  state: string;
  templates: number;
  subjects: number;
  ownedSlots: number;
  watermark: string;
  dim: number;
  headId: string;
  modelId: string;
  engine: string;
  p95Ms: number;
}

export interface Replica {
  address: string;
  client: grpc.Client;
  /** Search calls over one open SearchStream (one message each way per call). */
  searchStream: MultiplexedChannel<object, unknown>;
  /** The replica answered SearchStream with UNIMPLEMENTED (an older build): unary Search instead. */
  unarySearch: boolean;
  status: ShardStatusReply | undefined;
  /** Last poll or call succeeded and the replica said SERVING. */
  healthy: boolean;
  lastError: string | undefined;
  inflight: number;
}

export interface DirectoryOptions {
  addresses: string[];
  dns: string;
  refreshMs: number;
  logger: Logger;
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
      // ShardCaller fails over itself: no transparent retries underneath it.
      const client = makeClient(Shard, a, DIRECT_CLIENT_OPTIONS);
      const searchStream = new MultiplexedChannel<object, unknown>(client, 'SearchStream');
      this.replicas.set(a, { address: a, client, searchStream, unarySearch: false, status: undefined, healthy: false, lastError: 'not polled yet', inflight: 0 });
      changed = true;
    }
    for (const [a, r] of this.replicas) {
      if (addresses.includes(a)) continue;
      closeReplica(r);
      this.replicas.delete(a);
      changed = true;
    }
    await Promise.all([...this.replicas.values()].map((r) => this.poll(r)));
    if (changed) this.epoch++;
  }

  private async addresses(): Promise<string[]> {
    if (!this.options.dns) return this.options.addresses;
    const [host, port] = splitAddress(this.options.dns);
    try {
      const found = await lookup(host, { all: true });
      return found.map((f) => (f.family === 6 ? `[${f.address}]:${port}` : `${f.address}:${port}`)).sort();
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message, dns: this.options.dns }, 'shard DNS lookup failed; keeping the last known replicas');
      return [...this.replicas.keys()];
    }
  }

  private async poll(r: Replica): Promise<void> {
    try {
      const s = await unary<object, ShardStatusReply>(r.client, 'Status', {}, { deadline: Date.now() + Math.max(500, this.options.refreshMs) });
      const moved = r.status && (r.status.index !== s.index || r.status.count !== s.count);
      r.status = s;
      r.healthy = s.state === 'SERVING';
      r.lastError = r.healthy ? undefined : `state ${s.state}`;
      if (moved) this.epoch++;
    } catch (err) {
      r.healthy = false;
      r.lastError = (err as grpc.ServiceError).details || (err as Error).message;
    }
  }

  /** Shard.Search on one replica: over its open stream, or unary where the replica has no SearchStream. */
  async search<Res>(r: Replica, request: object, options: MultiplexedCallOptions): Promise<Res> {
    if (!r.unarySearch) {
      try {
        return (await r.searchStream.call(request, options)) as Res;
      } catch (err) {
        if ((err as grpc.ServiceError).code !== Status.UNIMPLEMENTED) throw err;
        r.unarySearch = true;
        this.options.logger.warn({ replica: r.address }, 'replica has no SearchStream (older build): using unary Search');
      }
    }
    return unary<object, Res>(r.client, 'Search', request, options);
  }

  /** k: what the replicas report (the most common value while a resize is in progress); 0 when none answered. */
  get count(): number {
    const votes = new Map<number, number>();
    for (const r of this.replicas.values()) if (r.status) votes.set(r.status.count, (votes.get(r.status.count) ?? 0) + 1);
    let best = 0;
    let bestVotes = 0;
    for (const [k, v] of votes) if (v > bestVotes || (v === bestVotes && k > best)) [best, bestVotes] = [k, v];
    return best;
  }

  /** The vector width the shards serve (0 when none answered). */
  get dim(): number {
    for (const r of this.replicas.values()) if (r.status) return r.status.dim;
    return 0;
  }

  get headId(): string {
    for (const r of this.replicas.values()) if (r.status) return r.status.headId;
    return '';
  }

  get modelId(): string {
    for (const r of this.replicas.values()) if (r.status) return r.status.modelId;
    return '';
  }

  /** Replicas of one shard index, the healthy and least busy first; unhealthy ones last, as a last resort. */
  candidates(index: number): Replica[] {
    const k = this.count;
    const list = [...this.replicas.values()].filter((r) => r.status?.index === index && r.status.count === k);
    // Rotate before the stable sort so equally good replicas take turns.
    const turn = this.turn++ % Math.max(1, list.length);
    return [...list.slice(turn), ...list.slice(0, turn)].sort((a, b) => Number(b.healthy) - Number(a.healthy) || a.inflight - b.inflight);
  }

  all(): Replica[] {
    return [...this.replicas.values()];
  }

  markFailed(r: Replica, reason: string): void {
    r.healthy = false;
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

function windowOf(windows: Map<number, LatencyWindow>, index: number): LatencyWindow {
  let w = windows.get(index);
  if (!w) windows.set(index, (w = new LatencyWindow(200)));
  return w;
}

function closeReplica(r: Replica): void {
  r.searchStream.close();
  r.client.close();
}
