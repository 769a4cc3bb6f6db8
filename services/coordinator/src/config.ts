import { parse, readEnv, type EnvSpec } from '@yoco/common';
import {
  CLIENT_SECURITY_ENV,
  grpcAddressEnv,
  REDIS_ENV,
  SERVER_SECURITY_ENV,
  SERVICE_ENV,
  type ClientSecurityConfig,
  type RedisConfig,
  type ServerSecurityConfig,
  type ServiceBaseConfig,
} from '@yoco/service';
import type { AuditConfig } from './audit-log.js';
import type { AuthConfig } from './caller-auth.js';
import { parseCallerLimits, type CallerLimits } from './caller-limits.js';
import type { FaceGate } from './face-gate.js';

export interface CoordinatorConfig extends RedisConfig, ServiceBaseConfig, ServerSecurityConfig, ClientSecurityConfig, AuthConfig, AuditConfig {
  grpcAddress: string;
  /** Static shard replica addresses (host:port); each replica reports its own index. */
  shardAddresses: string[];
  /** Or a DNS name (host:port) resolved to every replica, as a Kubernetes headless service gives. */
  shardDns: string;
  shardAddressesFile: string;
  /** How often replicas' status is polled and DNS re-resolved. */
  refreshMs: number;
  /** 'auto' (recent p95 of the shard) or a fixed delay in ms before a hedged request; 0 turns hedging off. */
  hedgeDelay: 'auto' | number;
  /** Deadline for requests that carry none. */
  defaultTimeoutMs: number;
  defaultThreshold: number;
  embedderAddress: string;
  maxImageBytes: number;
  /** serve: answer from stale shards and report it; refuse: UNAVAILABLE past maxStalenessMs. */
  stalePolicy: 'serve' | 'refuse';
  maxStalenessMs: number;
  thresholdFile: string;
  /** No request may set a threshold below this. */
  minThreshold: number;
  /** Opt-in: probe and enrolment vectors must have an L2 norm within [min, max]. */
  normRange: [number, number] | undefined;
  streamMaxInflight: number;
  serverMaxInflight: number;
  callerLimits: CallerLimits;
  duplicateCheck: 'off' | 'warn' | 'refuse';
  shardTlsName: string;
  embedderTlsName: string;
  /** As the enroller's: reported in a removal's receipt (the AOF bound). */
  aofRewriteAfterRemoveMs: number;
  /** The enrolment quality gate for faces (face profiles). */
  enrolFaceGate: FaceGate;
}

export const COORDINATOR_ENV: EnvSpec<CoordinatorConfig> = {
  ...REDIS_ENV,
  ...SERVICE_ENV,
  ...SERVER_SECURITY_ENV,
  ...CLIENT_SECURITY_ENV,
  jwtSecretFile: { name: 'AUTH_JWT_SECRET_FILE', default: '', parse: parse.string, doc: 'callers authenticate with HS256 JWTs signed with the secret in this file (at least 32 bytes)' },
  jwksFile: { name: 'AUTH_JWKS_FILE', default: '', parse: parse.string, doc: 'or with ES256/EdDSA JWTs checked against the public keys of this JWKS file' },
  issuer: { name: 'AUTH_ISSUER', default: '', parse: parse.string, doc: "the tokens' required iss (empty: not checked)" },
  audience: { name: 'AUTH_AUDIENCE', default: '', parse: parse.string, doc: "the tokens' required aud (empty: not checked)" },
  grpcAddress: grpcAddressEnv('127.0.0.1:50051', 'Matcher'),
  auditRetentionDays: { name: 'AUDIT_RETENTION_DAYS', default: 365, parse: parse.int(1, 36_500), doc: 'days audit records of writes, admin reads and denials are kept (stream <prefix>audit)' },
  auditDecisions: { name: 'AUDIT_DECISIONS', default: 'sample', parse: parse.oneOf('off', 'sample', 'full'), doc: 'gate decisions (Identify/Verify outcomes) kept: off, a sample, or all (stream <prefix>audit:decisions)' },
  auditDecisionSample: { name: 'AUDIT_DECISION_SAMPLE', default: 0.01, parse: parse.number(0, 1), doc: 'the fraction of decisions kept with AUDIT_DECISIONS=sample' },
  auditDecisionRetentionDays: { name: 'AUDIT_DECISION_RETENTION_DAYS', default: 30, parse: parse.int(1, 36_500), doc: 'days gate decisions are kept' },
  aofRewriteAfterRemoveMs: { name: 'AOF_REWRITE_AFTER_REMOVE_MS', default: 60_000, parse: parse.int(0, 86_400_000), doc: "the enroller's setting (set both alike): a removal's receipt states it as the bound on the AOF" },
  shardTlsName: { name: 'SHARD_TLS_NAME', default: '', parse: parse.string, doc: "the name the shards' certificates carry, checked instead of the address dialled (SHARD_DNS resolves to pod IPs)" },
  embedderTlsName: { name: 'EMBEDDER_TLS_NAME', default: '', parse: parse.string, doc: "the name the embedder's certificate carries, checked instead of EMBEDDER_ADDRESS's host" },
  duplicateCheck: {
    name: 'DUPLICATE_CHECK',
    default: 'warn',
    parse: parse.oneOf('off', 'warn', 'refuse'),
    doc: 'Enrol searches its probes first: warn = report other subjects they are accepted as (EnrolResponse.duplicates, the audit), refuse = ALREADY_EXISTS',
  },
  callerLimits: {
    name: 'CALLER_LIMITS',
    default: { identify: { ratePerSecond: 500, inflight: 64 }, enrol: { ratePerSecond: 500, inflight: 64 }, admin: { ratePerSecond: 500, inflight: 64 } },
    parse: parseCallerLimits,
    doc: 'per caller (token sub), by role: calls per second / calls in flight, e.g. identify=500/64,enrol=500/64,admin=500/64 (per coordinator process; needs authentication)',
  },
  shardAddresses: {
    name: 'SHARD_ADDRESSES',
    default: [],
    parse: (raw) => parse.list(raw).map(parse.address),
    doc: 'comma-separated host:port of every shard replica',
  },
  shardAddressesFile: { name: 'SHARD_ADDRESSES_FILE', default: '', parse: parse.string, doc: 'a file of shard replica addresses re-read each refresh (what the local launcher writes as it starts and stops shards)' },
  shardDns: { name: 'SHARD_DNS', default: '', parse: parse.address, doc: 'host:port resolved to every shard replica (headless service)' },
  refreshMs: { name: 'SHARD_REFRESH_MS', default: 1000, parse: parse.int(50, 600_000), doc: 'status poll and DNS refresh period' },
  hedgeDelay: {
    name: 'HEDGE_DELAY_MS',
    default: 'auto',
    parse: (raw) => (raw === 'auto' ? 'auto' : parse.int(0, 600_000)(raw)),
    doc: "delay before a hedged request to another replica: 'auto' (the shard's recent p95) or ms; 0 = off",
  },
  defaultTimeoutMs: { name: 'DEFAULT_TIMEOUT_MS', default: 10_000, parse: parse.int(1, 600_000), doc: 'deadline for calls that set none' },
  defaultThreshold: { name: 'DEFAULT_THRESHOLD', default: 0.5, parse: parse.number(Number.MIN_VALUE, 1), doc: 'acceptance threshold when a request sets none' },
  embedderAddress: { name: 'EMBEDDER_ADDRESS', default: '', parse: parse.address, doc: 'the Embedder (host:port) for image probes; empty = vectors only' },
  maxImageBytes: { name: 'MAX_IMAGE_BYTES', default: 10 * 1024 * 1024, parse: parse.int(1, 16 * 1024 * 1024 - 64 * 1024), doc: 'largest image probe accepted' },
  stalePolicy: { name: 'STALE_POLICY', default: 'serve', parse: parse.oneOf('serve', 'refuse'), doc: "serve: answer and report staleness_ms; refuse: UNAVAILABLE when a shard's view is older than MAX_STALENESS_MS" },
  maxStalenessMs: { name: 'MAX_STALENESS_MS', default: 10_000, parse: parse.int(100, 86_400_000), doc: 'the oldest shard view STALE_POLICY=refuse accepts' },
  thresholdFile: { name: 'THRESHOLD_FILE', default: '', parse: parse.string, doc: "a calibration (yoco calibrate's output) whose threshold replaces DEFAULT_THRESHOLD; re-read when it changes" },
  minThreshold: { name: 'MIN_THRESHOLD', default: 0, parse: parse.number(0, 1), doc: 'the lowest acceptance threshold a request may set' },
  normRange: {
    name: 'VECTOR_NORM_RANGE',
    default: undefined,
    parse: (raw) => {
      const [min, max] = raw.split(',').map((x) => parse.number(0, 1e12)(x.trim()));
      if (max === undefined || !(min <= max)) throw new Error('expected min,max with min <= max');
      return [min, max];
    },
    doc: 'opt-in: min,max L2 norm of probe and enrolment vectors (off by default)',
  },
  enrolFaceGate: {
    name: 'ENROL_FACE_GATE',
    default: { minEyeDistancePx: 30, minSharpness: 15, maxYawDeg: 40 },
    parse: (raw) => {
      const gate: FaceGate = { minEyeDistancePx: 0, minSharpness: 0, maxYawDeg: 90 };
      const keys: Record<string, keyof FaceGate> = { eyes: 'minEyeDistancePx', sharpness: 'minSharpness', yaw: 'maxYawDeg' };
      for (const part of parse.list(raw)) {
        const [k, v] = part.split('=').map((x) => x.trim());
        const key = keys[k];
        if (!key || v === undefined) throw new Error(`'${part}': expected eyes=PX, sharpness=N or yaw=DEG`);
        gate[key] = parse.number(0, key === 'maxYawDeg' ? 90 : 1e9)(v);
      }
      return gate;
    },
    doc: 'face profiles: an Enrol probe whose face is smaller (pixels between the eyes), blurrier (sharpness) or turned further (yaw degrees) is refused, e.g. eyes=30,sharpness=15,yaw=40; a setting left out is off',
  },
  streamMaxInflight: { name: 'STREAM_MAX_INFLIGHT', default: 16, parse: parse.int(1, 1_000_000), doc: 'Identify calls one IdentifyStream may have in flight' },
  serverMaxInflight: { name: 'SERVER_MAX_INFLIGHT', default: 512, parse: parse.int(1, 1_000_000), doc: 'Identify calls all IdentifyStreams may have in flight together' },
};

export function readCoordinatorConfig(env: NodeJS.ProcessEnv = process.env): CoordinatorConfig {
  const c = readEnv(COORDINATOR_ENV, env);
  if (c.shardAddresses.length === 0 && !c.shardDns && !c.shardAddressesFile) throw new Error('set SHARD_ADDRESSES, SHARD_ADDRESSES_FILE or SHARD_DNS: the coordinator needs its shards');
  if (c.defaultThreshold < c.minThreshold) throw new Error(`DEFAULT_THRESHOLD ${c.defaultThreshold} is below MIN_THRESHOLD ${c.minThreshold}`);
  if (c.streamMaxInflight > c.serverMaxInflight) throw new Error(`STREAM_MAX_INFLIGHT ${c.streamMaxInflight} must not exceed SERVER_MAX_INFLIGHT ${c.serverMaxInflight}`);
  return c;
}
