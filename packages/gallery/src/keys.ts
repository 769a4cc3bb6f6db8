/**
 * Every Redis key the store of record and its queue use, under the
 * deployment's prefix ('yoco:' by default): built here and nowhere else.
 */
export class StoreKeys {
  constructor(readonly prefix: string) {}

  /** The change stream every write appends to. */
  get changes(): string {
    return `${this.prefix}changes`;
  }

  /** The topology: the epoch and k Identify is answered by, and the change in progress (JSON). */
  get topology(): string {
    return `${this.prefix}topology`;
  }

  /** A head's ONNX bytes, stored by a rollout for the shards to load. */
  head(headId: string): string {
    return `${this.prefix}head:${headId}`;
  }

  /** The store's vector width and the cluster's head id. */
  get meta(): string {
    return `${this.prefix}meta`;
  }

  /** BullMQ's own prefix for the enrolment queue. */
  get queue(): string {
    return `${this.prefix}bull`;
  }

  /** BullMQ's job id counter of the enrolment queue ('enrol'): job ids are the write sequences. */
  get jobCounter(): string {
    return `${this.queue}:enrol:id`;
  }

  /** templateId -> record for every template of the slot. */
  slot(slot: number): string {
    return `${this.prefix}slot:${slot}`;
  }

  /** templateId -> the sequence that wrote it, for one subject. */
  subject(subjectId: string): string {
    return `${this.prefix}subject:${subjectId}`;
  }

  /** The sequence of the subject's last replace or remove (expires). */
  barrier(subjectId: string): string {
    return `${this.prefix}barrier:${subjectId}`;
  }

  /** Audit records of writes, admin reads and denials (a stream, trimmed by age). */
  get audit(): string {
    return `${this.prefix}audit`;
  }

  /** Audit records of gate decisions (Identify / Verify outcomes), full or sampled, with a retention of their own. */
  get auditDecisions(): string {
    return `${this.prefix}audit:decisions`;
  }

  /** Ids of the queued jobs that carry a subject's vectors: a removal strips them all. */
  jobsOf(subjectId: string): string {
    return `${this.prefix}jobs-of:${subjectId}`;
  }

  /**
   * While it exists, gallery writes are refused (FENCED) unless they carry its
   * value: a backup holds it for a consistent cut, a restore while it swaps
   * the data in. It expires, so a backup that dies does not stop writes.
   */
  get fence(): string {
    return `${this.prefix}fence`;
  }

  /**
   * The removal log: one entry per applied removal (subject, sequence), never
   * trimmed. A restore re-applies the ones after its backup, so restoring an
   * old backup never brings back a removed person.
   */
  get removals(): string {
    return `${this.prefix}removals`;
  }

  /** Marks a removed subject (a sequence only); imports skip it. */
  tombstone(subjectId: string): string {
    return `${this.prefix}removed:${subjectId}`;
  }
}
