import type { EnrolQueue } from '@yoco/queue';
import type { CallContext } from '@yoco/rpc';
import type { Registry } from 'prom-client';
import { ClusterStatusService } from './cluster-status.js';
import type { CoordinatorConfig } from './config.js';
import type { EmbedderClient } from './embedder-client.js';
import { EnrolmentService } from './enrolment-service.js';
import { IdentifyService } from './identify-service.js';
import { ProbeReader } from './probe-reader.js';
import type { ShardDirectory } from './shard-directory.js';
import type { StoreReader } from './store-reader.js';
import type { Call } from './unary-call.js';

export { MAX_TOP_K, DEFAULT_TOP_K } from './identify-service.js';
export { MAX_PROBES } from './enrolment-service.js';

export interface MatcherDeps {
  config: CoordinatorConfig;
  /** Embeds image probes; absent when no embedder is configured. */
  embedder?: EmbedderClient;
  directory: ShardDirectory;
  store: StoreReader;
  queue: EnrolQueue;
  registry: Registry;
}

/** The public Matcher service: its methods, each handed to the service of its direction. */
export class MatcherService {
  readonly identify: IdentifyService;
  readonly enrolment: EnrolmentService;
  readonly status: ClusterStatusService;

  constructor(deps: MatcherDeps) {
    const probes = new ProbeReader(deps.config, deps.embedder);
    this.identify = new IdentifyService(deps.config, deps.directory, probes, deps.registry);
    this.enrolment = new EnrolmentService(deps.config, deps.directory, probes, deps.queue, deps.store);
    this.status = new ClusterStatusService(deps.config, deps.directory, deps.queue, deps.store);
  }

  handlers() {
    const { identify, enrolment, status } = this;
    return {
      Identify: (req: any, call: Call) => identify.unaryIdentify(req, call),
      Verify: (req: any, call: Call) => identify.verify(req, call),
      Enrol: (req: any, call: Call) => enrolment.enrol(req, call),
      Remove: (req: any, call: Call) => enrolment.remove(req, call),
      Import: (req: any, call: Call) => enrolment.import(req, call),
      GetJob: (req: any) => enrolment.getJob(req),
      ListJobs: (req: any) => enrolment.listJobs(req),
      GetSubject: (req: any) => status.getSubject(req),
      ClusterStatus: () => status.clusterStatus(),
    };
  }

  /** Calls multiplexed over one stream (see MultiplexedStreams): the same answers as the unary methods. */
  multiplexed() {
    return { IdentifyStream: (req: any, ctx: CallContext) => this.identify.streamedIdentify(req, ctx) };
  }
}
