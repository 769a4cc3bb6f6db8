export { Coordinator } from './coordinator.js';
export { readCoordinatorConfig, COORDINATOR_ENV, type CoordinatorConfig } from './config.js';
export { MatcherService, MAX_TOP_K, DEFAULT_TOP_K } from './matcher-service.js';
export { ShardDirectory } from './shard-directory.js';
export { EnrolmentService, type DuplicateRead } from './enrolment-service.js';
export { ProbeReader } from './probe-reader.js';
export { mergeMatches, type ShardMatch, type MergedMatch } from './merge.js';
export { METHOD_ROLES, callerGate, callerOf, type Role, type Caller, type AuthConfig } from './caller-auth.js';
