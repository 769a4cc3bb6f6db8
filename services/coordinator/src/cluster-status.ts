import { getErrorMessage, InvalidArgumentError } from '@yoco/common';
import { assertSubjectId, shardOfSlot, slotOf, SubjectNotFoundError, type Topology } from '@yoco/gallery';
import { headFromBytes } from '@yoco/service';
import type { EnrolQueue } from '@yoco/queue';
import type { v1 } from '@yoco/rpc';
import type { CoordinatorConfig } from './config.js';
import type { DefaultThreshold } from './default-threshold.js';
import { storeCall } from './enrolment-service.js';
import type { Replica, ShardDirectory } from './shard-directory.js';
import type { StoreReader } from './store-reader.js';

/** What the replica said of itself at the last poll, or UNREACHABLE when it did not answer. */
function replicaState(r: Replica): string {
  if (!r.status || !r.reachable) return 'UNREACHABLE';
  return r.status.state;
}

/** The admin reads: ClusterStatus (the directory's view, plus the failed-job count) and GetSubject. */
export class ClusterStatusService {
  constructor(
    private readonly config: CoordinatorConfig,
    private readonly directory: ShardDirectory,
    private readonly queue: EnrolQueue,
    private readonly store: StoreReader,
    private readonly threshold: DefaultThreshold,
  ) {}

  async getSubject(req: v1.GetSubjectRequest__Output): Promise<v1.GetSubjectResponse> {
    assertSubjectId(req.subjectId);
    const subjectId = req.subjectId;
    const ids = await storeCall(() => this.store.templateIds(subjectId));
    if (ids.length === 0) throw new SubjectNotFoundError(subjectId);
    const slot = slotOf(subjectId);
    const k = this.directory.count;
    return { subjectId, templateIds: ids, slot, shard: k > 0 ? shardOfSlot(slot, k) : 0 };
  }

  /** Reshard: begins a change to the new k (or aborts the one in progress) in the store; the directory switches once it is ready. */
  async reshard(req: v1.ReshardRequest__Output): Promise<v1.ReshardResponse> {
    const t = await storeCall(() => (req.abort ? this.store.topology.abort() : this.store.topology.begin(req.shardCount)));
    // Seen at once here, not at the next refresh: ClusterStatus right after shows the change.
    this.directory.topology = t;
    return { topology: this.topologyMessage(t) };
  }

  /**
   * RolloutHead: the file must be a head this cluster can run (its width the
   * store's); stored under its id, then the next epoch names it.
   */
  async rolloutHead(req: v1.RolloutHeadRequest__Output): Promise<v1.ReshardResponse> {
    let head: ReturnType<typeof headFromBytes>;
    try {
      head = headFromBytes(new Uint8Array(req.headOnnx));
    } catch (err) {
      throw new InvalidArgumentError(`head_onnx is not a head this cluster can run: ${getErrorMessage(err)}`, 'HEAD_FORMAT');
    }
    const dim = await storeCall(() => this.store.dim());
    if (dim && head.dim !== dim) throw new InvalidArgumentError(`the head takes ${head.dim}-wide vectors; the store holds ${dim}-wide templates`, 'HEAD_DIM');
    const current = this.directory.topology;
    if (!current) throw new InvalidArgumentError('no topology on record yet: start the shards first', 'NO_TOPOLOGY');
    await storeCall(() => this.store.topology.putHead(head.id, req.headOnnx));
    const t = await storeCall(() => this.store.topology.begin(current.k, head.id));
    this.directory.topology = t;
    return { topology: this.topologyMessage(t) };
  }

  private topologyMessage(t: Topology | undefined): v1.Topology | undefined {
    if (!t) return undefined;
    const progress = this.directory.progress();
    return {
      epoch: t.epoch,
      shardCount: t.k,
      switchedAtMs: t.switchedAt,
      previousEpoch: t.previous?.epoch ?? 0,
      previousShardCount: t.previous?.k ?? 0,
      headId: t.headId ?? '',
      next: t.next && { epoch: t.next.epoch, shardCount: t.next.k, startedAtMs: t.next.startedAt, fromPosition: t.next.fromId, progress, headId: t.next.headId ?? '' },
    };
  }

  async clusterStatus(): Promise<v1.ClusterStatusResponse> {
    const directory = this.directory;
    // The failed-job count is best effort: status must answer while Redis is down.
    const failedJobs = await this.queue.failedCount().catch(() => 0);
    const k = directory.count;
    // Every index a replica reports or an epoch in play has: the next epoch's new ones, surplus ones.
    const indexes = Math.max(k, directory.topology?.next?.k ?? 0, ...directory.all().map((r) => (r.status ? r.status.index + 1 : 0)));
    const shards = Array.from({ length: indexes }, (_, index) => {
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
          kernel: r.status?.kernel ?? '',
          bytesPerTemplate: r.status?.bytesPerTemplate ?? 0,
        })),
      };
    });
    const gallerySize = shards.slice(0, k).reduce((sum, s) => sum + Math.max(0, ...s.replicas.map((r) => r.templates)), 0);
    return {
      dim: directory.dim,
      shardCount: k,
      epoch: directory.epoch,
      shards,
      gallerySize,
      headId: directory.headId,
      modelId: directory.modelId,
      defaultThreshold: this.threshold.value,
      thresholdSource: this.threshold.source,
      failedJobs,
      topology: this.topologyMessage(directory.topology),
    };
  }
}
