import { existsSync, readFileSync } from 'node:fs';
import { Matcher } from '@yoco/client';
import { loadProtos, makeClient, type ClientSecurity, type v1 } from '@yoco/rpc';
import { localCluster } from './cluster-file.js';

/**
 * The Matcher as the CLI's user configured it (@yoco/client: deadlines, retries where safe): TLS when
 * YOCO_CA_FILE names the CA that signed the Matcher's certificate, and the
 * bearer token from YOCO_TOKEN (`--ca-file` / `--token` set the same).
 */
export function matcherClient(address: string, env: NodeJS.ProcessEnv = process.env): Matcher {
  const { tls, token } = security(address, env);
  return new Matcher({ address, tls, token });
}

/** The plain generated stub, for the bulk paths that keep many calls in flight themselves. */
export function matcherStub(address: string, env: NodeJS.ProcessEnv = process.env): v1.MatcherClient {
  return makeClient(loadProtos().Matcher, address, {}, security(address, env));
}

function security(address: string, env: NodeJS.ProcessEnv): ClientSecurity {
  // A secured `npm start` here names its CA and tokens in cluster.json: used when nothing else is set.
  const local = localCluster(env);
  const mine = local?.matcher === address ? local : undefined;
  const caFile = env.YOCO_CA_FILE || mine?.caFile || undefined;
  const token = env.YOCO_TOKEN || (mine?.tokensFile && existsSync(mine.tokensFile) ? (JSON.parse(readFileSync(mine.tokensFile, 'utf8')) as { admin?: string }).admin : undefined) || undefined;
  return { tls: caFile ? { caFile } : undefined, token };
}
