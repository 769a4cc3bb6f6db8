import { EnrolQueue } from '@yoco/queue';
import { Gauge } from 'prom-client';
import { RpcServer, ServiceMetrics, type ClientTls, type Gate, type Logger } from '@yoco/rpc';
import { clientTls, redisTarget, serverSecurity } from '@yoco/service';
import { callerGate } from './caller-auth.js';
import { CallerLimiter } from './caller-limits.js';
import { AuditLog } from './audit-log.js';
import type { CoordinatorConfig } from './config.js';
import { EmbedderClient } from './embedder-client.js';
import { DefaultThreshold } from './default-threshold.js';
import { MatcherService } from './matcher-service.js';
import { openStoreReader, type StoreReader } from './store-reader.js';
import { ShardDirectory } from './shard-directory.js';

/** The coordinator process's parts: shard directory, the store reader, the queue, the Matcher server. */
export class Coordinator {
  readonly metrics = new ServiceMetrics('coordinator');
  readonly directory: ShardDirectory;
  private readonly store: StoreReader;
  private readonly queue: EnrolQueue;
  private readonly embedder: EmbedderClient | undefined;
  private server: RpcServer | undefined;
  private closing: Promise<void> | undefined;
  /** How it reaches its shards and the embedder: mutual TLS when TLS_CA_FILE (and a client certificate) are set. */
  private readonly clientTls: ClientTls | undefined;
  private readonly security: ReturnType<typeof serverSecurity>;
  private readonly gate: Gate;
  private readonly audit: AuditLog;
  readonly threshold: DefaultThreshold;

  constructor(private readonly config: CoordinatorConfig, private readonly logger: Logger) {
    // Checked before anything connects: a half-configured TLS or auth stops the process naming the variable.
    this.security = serverSecurity(config);
    this.clientTls = clientTls(config);
    // A calibration file that cannot be used stops the start, naming it.
    this.threshold = new DefaultThreshold(config, logger);
    this.audit = new AuditLog(config, logger);
    this.gate = callerGate(config, (d) => this.audit.record(d));
    // The store's meta records the cluster's head: only replicas running it are merged.
    this.store = openStoreReader(config, logger);
    this.directory = new ShardDirectory({
      addresses: config.shardAddresses,
      addressesFile: config.shardAddressesFile || undefined,
      dns: config.shardDns,
      refreshMs: config.refreshMs,
      logger,
      clusterHead: () => this.store.clusterHead(),
      topology: () => this.store.topology.read(),
      commit: (epoch) => this.store.topology.commit(epoch),
      tls: this.clientTls,
      tlsName: config.shardTlsName || undefined,
    });
    this.queue = new EnrolQueue({ redisUrl: redisTarget(config), prefix: config.prefix, minReplicasAck: config.minReplicasAck, ackTimeoutMs: config.ackTimeoutMs });
    const directory = this.directory;
    // What the alerts read: per shard index, its replicas by state (a missing index is one with no SERVING replica).
    new Gauge({
      name: 'yoco_coordinator_replicas',
      help: 'shard replicas by shard index and state as last polled: SERVING (merged), EXCLUDED (serving, but not merged: another head, stale), LOADING, RELOADING, HEAD_MISMATCH, DRAINING, UNREACHABLE',
      labelNames: ['shard', 'state'],
      registers: [this.metrics.registry],
      collect() {
        this.reset();
        for (let i = 0; i < directory.count; i++) this.set({ shard: String(i), state: 'SERVING' }, 0);
        for (const r of directory.all()) {
          const polled = r.status && r.reachable ? r.status.state : 'UNREACHABLE';
          const state = polled === 'SERVING' && directory.excluded(r) !== '' ? 'EXCLUDED' : polled;
          this.inc({ shard: r.status ? String(r.status.index) : 'unknown', state });
        }
      },
    });
    new Gauge({ name: 'yoco_coordinator_shard_indexes', help: 'shard indexes k the cluster has (0 before any replica answered)', registers: [this.metrics.registry], collect() { this.set(directory.count); } });
    this.embedder = config.embedderAddress ? new EmbedderClient(config.embedderAddress, config.maxImageBytes, this.clientTls, config.embedderTlsName || undefined) : undefined;
  }

  /** A model whose vectors the head cannot take is a deployment error: refuse to start. */
  private async checkEmbedder(embedder: EmbedderClient): Promise<void> {
    let info: { dim: number; modelId: string } | undefined;
    for (let i = 0; i < 600 && !info; i++) {
      info = await embedder.info().catch(() => undefined);
      if (!info) await new Promise((r) => setTimeout(r, 100));
    }
    if (!info) {
      this.logger.warn({ embedder: embedder.address }, 'embedder not answering yet; image probes will get UNAVAILABLE until it does');
      return;
    }
    const dim = this.directory.dim;
    if (dim && info.dim !== dim) {
      throw new Error(`the embedder's model ${info.modelId} gives ${info.dim}-wide vectors but the shards' head takes ${dim}: use one profile for the whole cluster`);
    }
  }

  readyFields(): Record<string, unknown> {
    return { grpcPort: this.port, healthPort: this.server?.healthPort || undefined, shards: this.directory.count, tls: Boolean(this.security.tls) };
  }

  get port(): number {
    return this.server?.port ?? 0;
  }

  async start(): Promise<void> {
    await this.directory.start();
    if (this.embedder) await this.checkEmbedder(this.embedder);
    const matcher = new MatcherService({ audit: this.audit, config: this.config, directory: this.directory, store: this.store, queue: this.queue, embedder: this.embedder, registry: this.metrics.registry, threshold: this.threshold });
    this.server = new RpcServer({
      address: this.config.grpcAddress,
      ...this.security,
      gates: [...(this.security.gates ?? []), this.gate],
      interceptors: [new CallerLimiter(this.config.callerLimits, this.metrics.registry, (caller, method, detail) => this.audit.record({ caller, method, outcome: 'RESOURCE_EXHAUSTED', detail })).interceptor()],
      logger: this.logger,
      metrics: this.metrics,
      // The largest request is an Enrol or Identify with an image (MAX_IMAGE_BYTES), or an Import of
      // 256 subjects; replies are top-k lists and statuses.
      maxReceiveBytes: 16 * 1024 * 1024,
      maxSendBytes: 4 * 1024 * 1024,
      multiplexedLimits: { maxInflightPerStream: this.config.streamMaxInflight, maxInflight: this.config.serverMaxInflight },
      services: [matcher.binding()],
    });
    await this.server.start();
    this.server.setServing(true);
  }

  stop(): Promise<void> {
    this.closing ??= (async () => {
      await this.server?.shutdown(this.config.shutdownGraceMs);
      this.directory.stop();
      await this.queue.close();
      this.embedder?.close();
      this.store.close();
      this.audit.close();
      this.threshold.close();
    })();
    return this.closing;
  }
}
