import { connectRedis, GalleryStore, TopologyStore } from '@yoco/gallery';
import type { Logger } from '@yoco/rpc';
import { redisTarget, type RedisConfig } from '@yoco/service';

/**
 * The only reads the coordinator makes of the store of record, all of them
 * for admin calls and never on the read path: the recorded vector width (for
 * writes while no shard answers), a subject's template ids (GetSubject), and
 * the cluster's head id (which replicas to merge), the stream's last id
 * (the duplicate check reads at it); and the topology, which
 * the coordinator also changes (Reshard, and the switch once a change is ready).
 */
export interface StoreReader {
  dim(): Promise<number>;
  templateIds(subjectId: string): Promise<string[]>;
  clusterHead(): Promise<string>;
  /** The change stream's last id: a consistency token every write acknowledged so far is at or before. */
  streamHead(): Promise<string>;
  topology: TopologyStore;
  close(): void;
}

/**
 * The coordinator's one connection to the store, behind the reads above. It
 * fails fast when Redis is down (callers get UNAVAILABLE) instead of queueing
 * commands. Templates are never written from here, only the topology.
 */
export function openStoreReader(config: RedisConfig, logger: Logger): StoreReader {
  const redis = connectRedis(redisTarget(config), 'request', (err) => logger.debug({ err: err.message }, 'redis connection error'));
  // The width given here is not used: nothing is written or decoded through this store.
  const store = new GalleryStore(redis, { prefix: config.prefix, dim: 1 });
  return {
    dim: () => store.storedDim(),
    templateIds: (subjectId) => store.templateIds(subjectId),
    clusterHead: () => store.storedHead(),
    streamHead: async () => (await store.streamInfo()).lastId,
    topology: new TopologyStore(redis, config.prefix),
    close: () => redis.disconnect(),
  };
}
