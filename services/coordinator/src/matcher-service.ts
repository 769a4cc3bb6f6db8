import type { EnrolQueue } from '@yoco/queue';
import { bindService, loadProtos, SERVICE_NAMES, type ServiceBinding, type v1 } from '@yoco/rpc';
import type { Registry } from 'prom-client';
import { ClusterStatusService } from './cluster-status.js';
import type { CoordinatorConfig } from './config.js';
import type { EmbedderClient } from './embedder-client.js';
import { EnrolmentService } from './enrolment-service.js';
import { IdentifyService } from './identify-service.js';
import { ProbeReader } from './probe-reader.js';
import type { ShardDirectory } from './shard-directory.js';
import type { StoreReader } from './store-reader.js';

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

  /** The Matcher's methods, typed by the generated contract: a method added to matcher.proto does not compile until it is here. */
  binding(): ServiceBinding {
    const { identify, enrolment, status } = this;
    return bindService<v1.MatcherHandlers>(
      SERVICE_NAMES.Matcher,
      loadProtos().Matcher.service,
      {
        Identify: (req, call) => identify.unaryIdentify(req, call),
        Verify: (req, call) => identify.verify(req, call),
        Enrol: (req, call) => enrolment.enrol(req, call),
        Remove: (req, call) => enrolment.remove(req, call),
        Import: (req, call) => enrolment.import(req, call),
        GetJob: (req, call) => enrolment.getJob(req, call),
        ListJobs: (req) => enrolment.listJobs(req),
        GetSubject: (req) => status.getSubject(req),
        ClusterStatus: () => status.clusterStatus(),
      },
      // Calls multiplexed over one stream (see MultiplexedStreams): the same answers as the unary methods.
      { IdentifyStream: (req, ctx) => identify.streamedIdentify(req, ctx) },
    );
  }
}
