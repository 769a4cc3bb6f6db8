import { parse, readEnv, type EnvSpec } from '@yoco/common';
import { REDIS_ENV, SEAL_ENV, SERVICE_ENV, type RedisConfig, type SealConfig, type ServiceBaseConfig } from '@yoco/service';

/** No head here: the vector width is the store's (recorded by the shards), not the enroller's to choose. */
export interface EnrollerConfig extends RedisConfig, ServiceBaseConfig, SealConfig {
  concurrency: number;
  aofRewriteAfterRemoveMs: number;
  removalLogDir: string;
}

export const ENROLLER_ENV: EnvSpec<EnrollerConfig> = {
  ...REDIS_ENV,
  ...SERVICE_ENV,
  ...SEAL_ENV,
  concurrency: { name: 'ENROLLER_CONCURRENCY', default: 8, parse: parse.int(1, 256), doc: 'jobs processed at once' },
  aofRewriteAfterRemoveMs: {
    name: 'AOF_REWRITE_AFTER_REMOVE_MS',
    default: 60_000,
    parse: parse.int(0, 86_400_000),
    doc: "after a removal, rewrite Redis' append-only file within this (batched; 0 = never): the bound on how long removed vectors stay in it",
  },
  removalLogDir: {
    name: 'REMOVAL_LOG_DIR',
    default: '',
    parse: parse.string,
    doc: "a directory (a volume of its own, not Redis') where every applied removal is also appended and synced before it is reported, one file per enroller: `yoco restore --removal-log DIR` re-applies them, even after losing every Redis replica",
  },
};

export function readEnrollerConfig(env: NodeJS.ProcessEnv = process.env): EnrollerConfig {
  return readEnv(ENROLLER_ENV, env);
}
