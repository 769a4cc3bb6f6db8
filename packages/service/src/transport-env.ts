import { existsSync } from 'node:fs';
import { ConfigError, parse, PermissionDeniedError, type EnvSpec } from '@yoco/common';

/** A file a setting names must be there: found at start, not at the first handshake. */
function mustExist(name: string, path: string): void {
  if (path && !existsSync(path)) throw new ConfigError(name, `${path} does not exist`);
}
import type { ClientTls, Gate, ServerOptions, ServerTls } from '@yoco/rpc';

/** A gRPC server's transport security, as every service reads it. */
export interface ServerSecurityConfig {
  tlsCertFile: string;
  tlsKeyFile: string;
  /** Mutual TLS: clients must present a certificate signed by this CA. */
  tlsClientCaFile: string;
  /** With mutual TLS: the identities (DNS or URI SANs) a client certificate must carry one of. */
  tlsPeerNames: string[];
  tlsRefreshMs: number;
  healthAddress: string;
  reflection: 'auto' | 'on' | 'off';
  allowInsecure: boolean;
}

export const SERVER_SECURITY_ENV: EnvSpec<ServerSecurityConfig> = {
  tlsCertFile: { name: 'TLS_CERT_FILE', default: '', parse: parse.string, doc: "this server's certificate (PEM); with TLS_KEY_FILE turns TLS on; re-read when it changes" },
  tlsKeyFile: { name: 'TLS_KEY_FILE', default: '', parse: parse.string, doc: "this server's private key (PEM)" },
  tlsClientCaFile: { name: 'TLS_CLIENT_CA_FILE', default: '', parse: parse.string, doc: "mutual TLS: the CA clients' certificates must chain to (the handshake refuses others)" },
  tlsPeerNames: { name: 'TLS_PEER_NAMES', default: [], parse: parse.list, doc: 'mutual TLS: client certificate names (DNS/URI SANs) allowed to call, e.g. coordinator.yoco; others get PERMISSION_DENIED' },
  tlsRefreshMs: { name: 'TLS_REFRESH_MS', default: 10_000, parse: parse.int(100, 3_600_000), doc: 'how often certificate files are re-read' },
  healthAddress: { name: 'HEALTH_ADDRESS', default: '', parse: parse.address, doc: 'a plaintext port serving only grpc.health.v1 (for probes that cannot do TLS)' },
  reflection: { name: 'GRPC_REFLECTION', default: 'auto', parse: parse.oneOf('auto', 'on', 'off'), doc: 'gRPC reflection: auto = on without TLS, off with it' },
  allowInsecure: { name: 'ALLOW_INSECURE', default: false, parse: parse.bool, doc: 'allow plaintext gRPC on a non-loopback address (otherwise refused at start)' },
};

/** RpcServer's security options from the config; a half-configured TLS is a config error, not a silent plaintext port. */
export function serverSecurity(c: ServerSecurityConfig): Pick<ServerOptions, 'tls' | 'gates' | 'healthAddress' | 'reflection' | 'allowInsecure'> {
  if (Boolean(c.tlsCertFile) !== Boolean(c.tlsKeyFile)) throw new ConfigError(c.tlsCertFile ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE', 'TLS needs both TLS_CERT_FILE and TLS_KEY_FILE');
  if (c.tlsClientCaFile && !c.tlsCertFile) throw new ConfigError('TLS_CLIENT_CA_FILE', 'mutual TLS needs TLS_CERT_FILE and TLS_KEY_FILE too');
  if (c.tlsPeerNames.length > 0 && !c.tlsClientCaFile) throw new ConfigError('TLS_PEER_NAMES', 'peer names can only be checked with mutual TLS (TLS_CLIENT_CA_FILE)');
  mustExist('TLS_CERT_FILE', c.tlsCertFile);
  mustExist('TLS_KEY_FILE', c.tlsKeyFile);
  mustExist('TLS_CLIENT_CA_FILE', c.tlsClientCaFile);
  const tls: ServerTls | undefined = c.tlsCertFile ? { certFile: c.tlsCertFile, keyFile: c.tlsKeyFile, clientCaFile: c.tlsClientCaFile || undefined, refreshMs: c.tlsRefreshMs } : undefined;
  return {
    tls,
    gates: c.tlsPeerNames.length > 0 ? [peerNameGate(c.tlsPeerNames)] : [],
    healthAddress: c.healthAddress || undefined,
    reflection: c.reflection === 'auto' ? undefined : c.reflection === 'on',
    allowInsecure: c.allowInsecure,
  };
}

/** Only peers whose certificate carries one of `names` may call (the coordinator, for a shard or the embedder). */
export function peerNameGate(names: string[]): Gate {
  const allowed = new Set(names);
  return async (call) => {
    const seen = call.peerCertificateNames();
    if (seen.some((n) => allowed.has(n))) return call.metadata;
    throw new PermissionDeniedError(`the caller's certificate names [${seen.join(', ')}] are none of the allowed peers [${names.join(', ')}]`, 'PEER_NOT_ALLOWED');
  };
}

/** How a process reaches TLS servers of the cluster (the coordinator its shards and embedder). */
export interface ClientSecurityConfig {
  tlsCaFile: string;
  tlsClientCertFile: string;
  tlsClientKeyFile: string;
}

export const CLIENT_SECURITY_ENV: EnvSpec<ClientSecurityConfig> = {
  tlsCaFile: { name: 'TLS_CA_FILE', default: '', parse: parse.string, doc: 'the CA that signed the servers this process calls; turns TLS on for its calls' },
  tlsClientCertFile: { name: 'TLS_CLIENT_CERT_FILE', default: '', parse: parse.string, doc: 'mutual TLS: the certificate this process presents (its identity in a SAN)' },
  tlsClientKeyFile: { name: 'TLS_CLIENT_KEY_FILE', default: '', parse: parse.string, doc: 'mutual TLS: its private key' },
};

export function clientTls(c: ClientSecurityConfig & { tlsRefreshMs?: number }): ClientTls | undefined {
  if (Boolean(c.tlsClientCertFile) !== Boolean(c.tlsClientKeyFile)) throw new ConfigError('TLS_CLIENT_CERT_FILE', 'mutual TLS needs both TLS_CLIENT_CERT_FILE and TLS_CLIENT_KEY_FILE');
  if (c.tlsClientCertFile && !c.tlsCaFile) throw new ConfigError('TLS_CA_FILE', 'a client certificate needs TLS_CA_FILE (the servers are checked too)');
  mustExist('TLS_CA_FILE', c.tlsCaFile);
  mustExist('TLS_CLIENT_CERT_FILE', c.tlsClientCertFile);
  mustExist('TLS_CLIENT_KEY_FILE', c.tlsClientKeyFile);
  if (!c.tlsCaFile) return undefined;
  return { caFile: c.tlsCaFile, certFile: c.tlsClientCertFile || undefined, keyFile: c.tlsClientKeyFile || undefined, refreshMs: c.tlsRefreshMs };
}
