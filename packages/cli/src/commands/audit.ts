import { matcherClient } from '../matcher-client.js';

export interface AuditOptions {
  subject?: string;
  /** ms since the epoch, an ISO date, or a duration back from now (30m, 24h, 7d). */
  since?: string;
  decisions: boolean;
  json: boolean;
  limit: number;
}

/** '24h' -> now - 24 h; an ISO date or epoch ms as they are. */
export function parseSince(raw: string | undefined, now = Date.now()): number {
  if (!raw) return 0;
  const back = /^(\d+)([smhd])$/.exec(raw);
  if (back) return now - Number(back[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[back[2] as 's' | 'm' | 'h' | 'd'];
  if (/^\d+$/.test(raw)) return Number(raw);
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new Error(`--since '${raw}' is not a time (epoch ms, an ISO date, or 30m / 24h / 7d)`);
  return t;
}

/** `yoco audit`: the Matcher's audit records, newest first (admin token). */
export async function audit(address: string, options: AuditOptions): Promise<void> {
  const client = matcherClient(address);
  try {
    const { records } = await client.call('ListAudit', { subjectId: options.subject ?? '', sinceMs: parseSince(options.since), limit: options.limit, decisions: options.decisions }, { timeoutMs: 10_000 });
    if (options.json) {
      console.log(JSON.stringify(records, null, 2));
      return;
    }
    for (const r of records) {
      const decision = options.decisions ? ` accepted=${r.acceptedSubjectId || '(none)'} score=${r.score.toFixed(3)} threshold=${r.threshold}` : '';
      const job = r.jobId ? ` job=${r.jobId}` : '';
      const subject = r.subjectId ? ` subject=${r.subjectId}` : '';
      console.log(`${new Date(r.atMs).toISOString()} ${r.caller} ${r.method}${subject}${job} ${r.outcome}${decision}${r.detail ? ` (${r.detail})` : ''}`);
    }
    if (records.length === 0) console.log('no audit records match');
  } finally {
    client.close();
  }
}
