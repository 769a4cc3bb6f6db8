import * as grpc from '@grpc/grpc-js';
import { experimental } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';

/** How often certificate and key files are read again: a rotated file is served to new connections within this. */
export const DEFAULT_TLS_REFRESH_MS = 10_000;

/** A server's TLS: its certificate and key, and (for mutual TLS) the CA its clients' certificates must chain to. */
export interface ServerTls {
  certFile: string;
  keyFile: string;
  /** Set: clients must present a certificate signed by this CA (the TLS handshake refuses others). */
  clientCaFile?: string;
  refreshMs?: number;
}

/** A client's TLS: the CA that signed the servers' certificates, and (for mutual TLS) its own certificate and key. */
export interface ClientTls {
  caFile: string;
  certFile?: string;
  keyFile?: string;
  refreshMs?: number;
}

/**
 * Server credentials from files, watched: grpc-js' FileWatcherCertificateProvider
 * re-reads them every `refreshMs` and new connections get what is on disk.
 * Insecure when `tls` is undefined.
 */
export function serverCredentials(tls: ServerTls | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const refreshIntervalMs = tls.refreshMs ?? DEFAULT_TLS_REFRESH_MS;
  const identity = new experimental.FileWatcherCertificateProvider({ certificateFile: tls.certFile, privateKeyFile: tls.keyFile, refreshIntervalMs });
  const clientCa = tls.clientCaFile ? new experimental.FileWatcherCertificateProvider({ caCertificateFile: tls.clientCaFile, refreshIntervalMs }) : null;
  // grpc-js 1.14 declares this function's parameters as (ca, identity, ...) but reads them as (identity, ca, ...):
  // the identity provider goes first (server-credentials.js, CertificateProviderServerCredentials).
  return experimental.createCertificateProviderServerCredentials(identity, clientCa, clientCa !== null);
}

/** Channel credentials from files, watched as the server's are. Insecure when `tls` is undefined. */
export function channelCredentials(tls: ClientTls | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  const refreshIntervalMs = tls.refreshMs ?? DEFAULT_TLS_REFRESH_MS;
  const ca = new experimental.FileWatcherCertificateProvider({ caCertificateFile: tls.caFile, refreshIntervalMs });
  const identity =
    tls.certFile && tls.keyFile ? new experimental.FileWatcherCertificateProvider({ certificateFile: tls.certFile, privateKeyFile: tls.keyFile, refreshIntervalMs }) : null;
  return experimental.createCertificateProviderChannelCredentials(ca, identity);
}

/** The identities (DNS and URI subject alternative names) of the peer's certificate on a TLS connection; [] without one. */
export function peerIdentities(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } }): string[] {
  const san = call.getAuthContext().sslPeerCertificate?.subjectaltname ?? '';
  return san
    .split(/,\s*/)
    .map((s) => /^(?:DNS|URI):(.+)$/.exec(s)?.[1])
    .filter((s): s is string => s !== undefined);
}
