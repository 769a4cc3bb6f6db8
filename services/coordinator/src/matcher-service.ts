import type { EnrolQueue } from '@yoco/queue';
import type { Metadata } from '@grpc/grpc-js';
import { f32leBytes } from '@yoco/common';
import { bindService, loadProtos, SERVICE_NAMES, statusName, toServiceError, type ServiceBinding, type v1 } from '@yoco/rpc';
import type { AuditLog } from './audit-log.js';
import { callerOf } from './caller-auth.js';
import { callDeadline, type Call } from './unary-call.js';
import type { Registry } from 'prom-client';
import { ClusterStatusService } from './cluster-status.js';
import type { CoordinatorConfig } from './config.js';
import type { DefaultThreshold } from './default-threshold.js';
import type { EmbedderClient } from './embedder-client.js';
import { EnrolmentService } from './enrolment-service.js';
import { IdentifyService } from './identify-service.js';
import { ProbeReader } from './probe-reader.js';
import type { ShardDirectory } from './shard-directory.js';
import type { StoreReader } from './store-reader.js';

export { MAX_TOP_K, DEFAULT_TOP_K } from './identify-service.js';
export { MAX_PROBES } from './enrolment-service.js';

export interface MatcherDeps {
  audit: AuditLog;
  config: CoordinatorConfig;
  /** Embeds image probes; absent when no embedder is configured. */
  embedder?: EmbedderClient;
  directory: ShardDirectory;
  store: StoreReader;
  queue: EnrolQueue;
  registry: Registry;
  threshold: DefaultThreshold;
}

/** The public Matcher service: its methods, each handed to the service of its direction. */
export class MatcherService {
  readonly identify: IdentifyService;
  readonly enrolment: EnrolmentService;
  readonly status: ClusterStatusService;

  constructor(private readonly deps: MatcherDeps) {
    const probes = new ProbeReader(deps.config, deps.embedder);
    this.identify = new IdentifyService(deps.config, deps.directory, probes, deps.registry, deps.threshold);
    this.enrolment = new EnrolmentService(deps.config, deps.directory, probes, deps.queue, deps.store, async (vector, deadline, read) => {
      const probe = { kind: 'vector' as const, vector: { f32le: f32leBytes(vector), values: [] } };
      const res = await this.identify.identify({ probe, topK: 3, threshold: 0, ...read }, deadline);
      return res.matches ?? [];
    });
    this.status = new ClusterStatusService(deps.config, deps.directory, deps.queue, deps.store, deps.threshold);
  }

  /** The Matcher's methods, typed by the generated contract: a method added to matcher.proto does not compile until it is here. */
  binding(): ServiceBinding {
    const { identify, enrolment, status } = this;
    const audit = this.deps.audit;
    const deps = this.deps;
    return bindService<v1.MatcherHandlers>(
      SERVICE_NAMES.Matcher,
      loadProtos().Matcher.service,
      {
        Identify: (req, call) => decided('Identify', call.metadata, call.getPeer(), identify.unaryIdentify(req, call), (r) => identifyDecision(r), audit),
        Verify: (req, call) => decided('Verify', call.metadata, call.getPeer(), identify.verify(req, call), (r) => ({ acceptedSubjectId: r.match ? req.subjectId : '', score: Number(r.score ?? 0), threshold: Number(r.threshold ?? 0), subjectId: req.subjectId }), audit),
        Enrol: (req, call) =>
          audited('Enrol', call, req.subjectId, enrolment.enrol(req, call), (r) => ({ jobId: r.jobId ?? '', detail: r.duplicates?.length ? `duplicate of ${r.duplicates.map((d) => d.subjectId).join(' ')}` : '' }), audit),
        Remove: (req, call) => audited('Remove', call, req.subjectId, enrolment.remove(req, call), (r) => ({ jobId: r.jobId ?? '' }), audit),
        Import: (req, call) =>
          audited('Import', call, req.subjects[0]?.subjectId ?? '', enrolment.import(req, call), (r) => ({ jobId: r.jobId ?? '', detail: `${req.subjects.length} subjects: ${req.subjects.map((s) => s.subjectId).join(' ').slice(0, 2000)}` }), audit),
        GetJob: (req, call) => enrolment.getJob(req, call),
        ListJobs: (req, call) => audited('ListJobs', call, '', enrolment.listJobs(req), () => ({}), audit),
        GetSubject: (req, call) => audited('GetSubject', call, req.subjectId, status.getSubject(req), () => ({}), audit),
        ClusterStatus: () => status.clusterStatus(),
        RolloutHead: (req, call) => audited('RolloutHead', call, '', status.rolloutHead(req), (r) => ({ detail: `head ${r.topology?.next?.headId} as epoch ${r.topology?.next?.epoch}` }), audit),
        Reshard: (req, call) => audited('Reshard', call, '', status.reshard(req), (r) => ({ detail: req.abort ? `abort; now epoch ${r.topology?.epoch}` : `k=${req.shardCount} as epoch ${r.topology?.next?.epoch}` }), audit),
        VerifyRemoval: (req, call) => audited('VerifyRemoval', call, req.subjectId, enrolment.verifyRemoval(req, callDeadline(call.getDeadline(), deps.config.defaultTimeoutMs)), (r) => ({ detail: r.removed ? 'removed' : 'NOT removed' }), audit),
        ListAudit: (req, call) => audited('ListAudit', call, req.subjectId, audit.list(req).then((records) => ({ records })), () => ({ detail: req.decisions ? 'decisions' : '' }), audit),
      },
      // Calls multiplexed over one stream (see MultiplexedStreams): the same answers as the unary methods.
      { IdentifyStream: (req, ctx) => decided('IdentifyStream', ctx.metadata, ctx.lane, identify.streamedIdentify(req, ctx), (r) => identifyDecision(r), audit) },
    );
  }
}

/** Who a call came from, for the audit: its token's sub, or its address without authentication. */
function callerName(metadata: Metadata, peer: string): string {
  return callerOf(metadata)?.sub ?? `anonymous@${peer}`;
}

function outcomeOf(err: unknown): string {
  return statusName(toServiceError(err).code ?? 2);
}

/** Runs a write or admin read and records it (caller, subject, job, outcome), failed or not. */
async function audited<Res>(method: string, call: Call, subjectId: string, work: Promise<Res>, what: (res: Res) => { jobId?: string; detail?: string }, audit: AuditLog): Promise<Res> {
  const caller = callerName(call.metadata, call.getPeer());
  try {
    const res = await work;
    audit.record({ caller, method, subjectId, outcome: 'OK', ...what(res) });
    return res;
  } catch (err) {
    audit.record({ caller, method, subjectId, outcome: outcomeOf(err) });
    throw err;
  }
}

/** Runs an Identify or Verify and records its decision (as AUDIT_DECISIONS says: off, sampled, every one). */
async function decided<Res>(method: string, metadata: Metadata, peer: string, work: Promise<Res>, what: (res: Res) => { acceptedSubjectId: string; score: number; threshold: number; subjectId?: string }, audit: AuditLog): Promise<Res> {
  const caller = callerName(metadata, peer);
  try {
    const res = await work;
    audit.decision({ caller, method, outcome: 'OK', ...what(res) });
    return res;
  } catch (err) {
    audit.decision({ caller, method, outcome: outcomeOf(err) });
    throw err;
  }
}

function identifyDecision(r: v1.IdentifyResponse): { acceptedSubjectId: string; score: number; threshold: number } {
  const top = r.matches?.[0];
  return { acceptedSubjectId: top?.accepted ? (top.subjectId ?? '') : '', score: Number(top?.score ?? 0), threshold: Number(r.threshold ?? 0) };
}
