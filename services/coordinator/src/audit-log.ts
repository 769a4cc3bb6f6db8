import { InvalidArgumentError } from '@yoco/common';
import { connectRedis, StoreKeys } from '@yoco/gallery';
import type { Logger, v1 } from '@yoco/rpc';
import { redisTarget, type RedisConfig } from '@yoco/service';

export interface AuditConfig {
  /** Days audit records of writes, admin reads and denials are kept. */
  auditRetentionDays: number;
  /** Gate decisions: not kept, a sample, or every one. */
  auditDecisions: 'off' | 'sample' | 'full';
  auditDecisionSample: number;
  auditDecisionRetentionDays: number;
}

export type AuditRecord = Required<Omit<v1.AuditRecord, 'atMs'>> & { atMs: number };
type Entry = Partial<Omit<AuditRecord, 'atMs'>> & { caller: string; method: string; outcome: string };

const DAY_MS = 86_400_000;

/**
 * Who did what, to whom, when, with what outcome: each record is one entry of
 * a Redis stream of its own (XADD with MINID trims what is older than the
 * retention, at every write) and one log line. Writing never fails or slows a
 * call: a record that cannot reach Redis is still in the log.
 */
export class AuditLog {
  private readonly redis: ReturnType<typeof connectRedis>;
  private readonly keys: StoreKeys;

  constructor(private readonly config: AuditConfig & RedisConfig, private readonly logger: Logger) {
    this.redis = connectRedis(redisTarget(config), 'request', (err) => logger.debug({ err: err.message }, 'audit: redis connection error'));
    this.keys = new StoreKeys(config.prefix);
  }

  /** A write, an admin read, or a denial. */
  record(entry: Entry): void {
    this.write(this.keys.audit, this.config.auditRetentionDays, entry);
  }

  /** A gate decision (Identify, Verify), kept as configured. */
  decision(entry: Entry): void {
    const mode = this.config.auditDecisions;
    if (mode === 'off' || (mode === 'sample' && Math.random() >= this.config.auditDecisionSample)) return;
    this.write(this.keys.auditDecisions, this.config.auditDecisionRetentionDays, entry);
  }

  private write(key: string, retentionDays: number, entry: Entry): void {
    const at = Date.now();
    this.logger.info({ audit: key.endsWith('decisions') ? 'decision' : 'record', ...entry }, 'audit');
    const fields = Object.entries(entry).flatMap(([k, v]) => (v === undefined || v === '' ? [] : [k, String(v)]));
    // MINID ~: entries older than the retention go as this one is added (approximately: whole stream nodes).
    this.redis.xadd(key, 'MINID', '~', String(at - retentionDays * DAY_MS), '*', ...fields).catch((err: Error) => this.logger.warn({ err: err.message }, 'audit record not stored in Redis (it is in this log)'));
  }

  /** Newest first: at most `limit`, about `subjectId` when set, at or after `sinceMs`. */
  async list(req: v1.ListAuditRequest__Output): Promise<AuditRecord[]> {
    const limit = req.limit || 100;
    if (limit > 1000) throw new InvalidArgumentError(`limit ${limit} is above 1000`);
    const key = req.decisions ? this.keys.auditDecisions : this.keys.audit;
    const out: AuditRecord[] = [];
    let end = '+';
    const start = req.sinceMs > 0 ? `${req.sinceMs}-0` : '-';
    // Scanned newest first in pages; a subject filter may read many pages (bounded by the retention).
    for (let page = 0; page < 100 && out.length < limit; page++) {
      const batch = await this.redis.xrevrange(key, end, start, 'COUNT', 500);
      for (const [id, flat] of batch) {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]] = flat[i + 1];
        if (req.subjectId && f.subjectId !== req.subjectId && f.acceptedSubjectId !== req.subjectId) continue;
        out.push({
          atMs: Number(id.split('-')[0]),
          caller: f.caller ?? '',
          method: f.method ?? '',
          subjectId: f.subjectId ?? '',
          jobId: f.jobId ?? '',
          outcome: f.outcome ?? '',
          acceptedSubjectId: f.acceptedSubjectId ?? '',
          score: Number(f.score ?? 0),
          threshold: Number(f.threshold ?? 0),
          detail: f.detail ?? '',
        });
        if (out.length === limit) break;
      }
      if (batch.length < 500) break;
      const [ms, seq] = batch[batch.length - 1][0].split('-').map(Number);
      end = seq > 0 ? `${ms}-${seq - 1}` : `${ms - 1}`;
    }
    return out;
  }

  close(): void {
    this.redis.disconnect();
  }
}
