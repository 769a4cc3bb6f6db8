import { loadProtos, makeClient, type v1 } from '@yoco/rpc';

/**
 * A client of the Matcher as the CLI's user configured it: TLS when
 * YOCO_CA_FILE names the CA that signed the Matcher's certificate, and the
 * bearer token from YOCO_TOKEN (`--ca-file` / `--token` set the same).
 */
export function matcherClient(address: string, env: NodeJS.ProcessEnv = process.env): v1.MatcherClient {
  const caFile = env.YOCO_CA_FILE || undefined;
  const token = env.YOCO_TOKEN || undefined;
  return makeClient(loadProtos().Matcher, address, {}, { tls: caFile ? { caFile } : undefined, token });
}
