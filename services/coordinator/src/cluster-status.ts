import { assertSubjectId, shardOfSlot, slotOf, SubjectNotFoundError } from '@yoco/gallery';
import type { EnrolQueue } from '@yoco/queue';
import type { v1 } from '@yoco/rpc';
import type { CoordinatorConfig } from './config.js';
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

  async clusterStatus(): Promise<v1.ClusterStatusResponse> {
    const directory = this.directory;
    // The failed-job count is best effort: status must answer while Redis is down.
    const failedJobs = await this.queue.failedCount().catch(() => 0);
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
      defaultThreshold: this.config.defaultThreshold,
      failedJobs,
    };
  }
}
