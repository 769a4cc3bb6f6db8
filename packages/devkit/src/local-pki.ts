import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';

/** The identity (a DNS SAN) the coordinator's client certificate carries, and what shards and the embedder allow. */
export const COORDINATOR_IDENTITY = 'coordinator.yoco';

export interface KeyPair {
  cert: string;
  key: string;
}

/** A local CA, a certificate per service, the coordinator's client certificate, and a JWT secret: files under `dir`. */
export interface LocalPki {
  dir: string;
  caFile: string;
  /** Server certificates by service name (matcher, shard, embedder): SANs <name>.yoco, localhost, 127.0.0.1. */
  servers: Record<string, KeyPair>;
  /** The coordinator's client certificate (SAN coordinator.yoco). */
  coordinator: KeyPair;
  jwtSecretFile: string;
  /** The keys templates are sealed with at rest (TEMPLATE_KEYS_FILE). */
  templateKeysFile: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A P-256 key and a certificate for `names` (DNS SANs; 127.0.0.1 and localhost are added), signed by the CA in `dir`. */
export function issueCertificate(dir: string, file: string, names: string[], ca = { cert: 'ca.crt', key: 'ca.key' }): KeyPair {
  const ext = join(dir, `${file}.ext`);
  writeFileSync(ext, `subjectAltName=${[...names, 'localhost'].map((n) => `DNS:${n}`).join(',')},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${names[0]}`], dir);
  openssl(['x509', '-req', '-in', `${file}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '30', '-out', `${file}.crt`, '-extfile', `${file}.ext`], dir);
  return { cert: join(dir, `${file}.crt`), key: join(dir, `${file}.key`) };
}

/** A self-signed CA in `dir` (ca.crt, ca.key). */
export function makeCa(dir: string, name = 'YOCO local CA'): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  return join(dir, 'ca.crt');
}

/**
 * Everything a secured local cluster needs, made with the openssl CLI (kept
 * when already there, so a client holding ca.crt keeps working across starts).
 */
export function makeLocalPki(dir: string, services = ['matcher', 'shard', 'embedder']): LocalPki {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fresh = !existsSync(join(dir, 'ca.crt'));
  if (fresh) makeCa(dir);
  const servers: Record<string, KeyPair> = {};
  for (const s of services) servers[s] = fresh || !existsSync(join(dir, `${s}.crt`)) ? issueCertificate(dir, s, [`${s}.yoco`]) : { cert: join(dir, `${s}.crt`), key: join(dir, `${s}.key`) };
  const coordinator = fresh || !existsSync(join(dir, 'coordinator-client.crt')) ? issueCertificate(dir, 'coordinator-client', [COORDINATOR_IDENTITY]) : { cert: join(dir, 'coordinator-client.crt'), key: join(dir, 'coordinator-client.key') };
  const jwtSecretFile = join(dir, 'jwt-secret');
  if (!existsSync(jwtSecretFile)) writeFileSync(jwtSecretFile, randomBytes(32).toString('base64url'), { mode: 0o600 });
  const templateKeysFile = join(dir, 'template-keys.json');
  if (!existsSync(templateKeysFile)) writeFileSync(templateKeysFile, JSON.stringify({ current: 'local-1', keys: { 'local-1': randomBytes(32).toString('base64') } }), { mode: 0o600 });
  return { dir, caFile: join(dir, 'ca.crt'), servers, coordinator, jwtSecretFile, templateKeysFile };
}

/** An HS256 token for the Matcher (what a site gateway would get from its identity provider). */
export function mintToken(secret: string, sub: string, roles: string[], ttlSeconds = 7 * 24 * 3600): Promise<string> {
  return new SignJWT({ roles }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds).sign(new TextEncoder().encode(secret.trimEnd()));
}
