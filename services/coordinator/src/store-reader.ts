import type { GalleryStore } from '@yoco/gallery';

/**
 * The only reads the coordinator makes of the store of record, all of them
 * for admin calls and never on the read path: the recorded vector width (for
 * writes while no shard answers), a subject's template ids (GetSubject), and
 * the cluster's head id (which replicas to merge).
 */
export interface StoreReader {
  dim(): Promise<number>;
  templateIds(subjectId: string): Promise<string[]>;
  clusterHead(): Promise<string>;
}

export function storeReader(store: GalleryStore): StoreReader {
  return {
    dim: () => store.storedDim(),
    templateIds: (subjectId) => store.templateIds(subjectId),
    clusterHead: () => store.storedHead(),
  };
}
