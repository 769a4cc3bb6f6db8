import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { callerGate, callerOf, type AuthConfig } from '@yoco/coordinator';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'yoco-auth-'));
const secretFile = join(dir, 'secret');
writeFileSync(secretFile, 'a-secret-of-at-least-thirty-two-bytes!!\n');
const none: AuthConfig = { jwtSecretFile: '', jwksFile: '', issuer: '', audience: '' };

function call(method: string, token?: string, extra: Record<string, string> = {}) {
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  for (const [k, v] of Object.entries(extra)) metadata.set(k, v);
  return { path: `/yoco.v1.Matcher/${method}`, metadata, peer: 'ipv4:10.0.0.9:5555', peerCertificateNames: () => [] };
}
const hs = (claims: Record<string, unknown>, sub = 'gw-1', exp = '1h') =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(exp).sign(new TextEncoder().encode('a-secret-of-at-least-thirty-two-bytes!!'));
const code = (p: Promise<unknown>) => p.then(() => 'OK', (e: { code?: string }) => e.code ?? String(e));

describe('the Matcher gate (bearer JWTs, roles)', () => {
  it('HS256 from a secret file: roles as an array or a space-separated string; the caller is handed on, and a caller header a client sends is dropped', async () => {
    const gate = callerGate({ ...none, jwtSecretFile: secretFile });
    const md = await gate(call('Enrol', await hs({ roles: 'identify enrol' }), { 'yoco-caller-sub': 'admin-impostor', 'yoco-caller-roles': 'admin' }));
    expect(callerOf(md)).toEqual({ sub: 'gw-1', roles: ['identify', 'enrol'] });
    expect(callerOf((await gate(call('ListJobs', await hs({ roles: ['admin'] }))))!)?.roles).toEqual(['admin']);
    expect(await code(gate(call('ListJobs', await hs({ roles: ['enrol'] }))))).toBe('ROLE_DENIED');
    expect(await code(gate(call('Identify', await hs({ roles: ['identify'] }, 'gw-1', '-1m'))))).toBe('TOKEN_EXPIRED');
    expect(await code(gate(call('Identify')))).toBe('NO_TOKEN');
    expect(await code(gate(call('NotAMethod', await hs({ roles: ['admin'] }))))).toBe('METHOD_DENIED');
    // A token without exp is refused: every token must end.
    const forever = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('x').sign(new TextEncoder().encode('a-secret-of-at-least-thirty-two-bytes!!'));
    expect(await code(gate(call('Identify', forever)))).toBe('BAD_TOKEN');
    // alg none, or an RS/ES token against an HS key: refused.
    expect(await code(gate(call('Identify', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4Iiwicm9sZXMiOlsiYWRtaW4iXX0.')))).toBe('BAD_TOKEN');
  });

  it('ES256 and EdDSA from a JWKS file, with issuer and audience checked', async () => {
    const es = await generateKeyPair('ES256');
    const ed = await generateKeyPair('EdDSA');
    const jwks = { keys: [{ ...(await exportJWK(es.publicKey)), kid: 'es', alg: 'ES256' }, { ...(await exportJWK(ed.publicKey)), kid: 'ed', alg: 'EdDSA' }] };
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwks));
    const gate = callerGate({ ...none, jwksFile, issuer: 'https://idp.example', audience: 'yoco' });
    const sign = (key: Parameters<SignJWT['sign']>[0], alg: string, kid: string, iss = 'https://idp.example', aud = 'yoco') =>
      new SignJWT({ roles: ['identify'] }).setProtectedHeader({ alg, kid }).setSubject('site-7').setIssuer(iss).setAudience(aud).setExpirationTime('5m').sign(key);
    expect(callerOf(await gate(call('Identify', await sign(es.privateKey, 'ES256', 'es'))))?.sub).toBe('site-7');
    expect(callerOf(await gate(call('Verify', await sign(ed.privateKey, 'EdDSA', 'ed'))))?.sub).toBe('site-7');
    expect(await code(gate(call('Identify', await sign(es.privateKey, 'ES256', 'es', 'https://other.example'))))).toBe('BAD_TOKEN');
    expect(await code(gate(call('Identify', await sign(es.privateKey, 'ES256', 'es', 'https://idp.example', 'other'))))).toBe('BAD_TOKEN');
    // Signed by a key the JWKS does not hold.
    const stranger = await generateKeyPair('ES256');
    expect(await code(gate(call('Identify', await sign(stranger.privateKey, 'ES256', 'es'))))).toBe('BAD_TOKEN');
  });

  it('a token remembered as verified still ends at its exp', async () => {
    const gate = callerGate({ ...none, jwtSecretFile: secretFile });
    const t = await hs({ roles: ['identify'] }, 'gw-2', '2s');
    expect(callerOf(await gate(call('Identify', t)))?.sub).toBe('gw-2');
    expect(callerOf(await gate(call('Identify', t)))?.sub).toBe('gw-2');
    await new Promise((r) => setTimeout(r, 2100));
    expect(await code(gate(call('Identify', t)))).toBe('TOKEN_EXPIRED');
  });

  it('without authentication no caller is known, whatever headers a client sends', async () => {
    const md = await callerGate(none)(call('Enrol', undefined, { 'yoco-caller-sub': 'someone', 'yoco-caller-roles': 'admin' }));
    expect(callerOf(md)).toBeUndefined();
  });

  it('a config it cannot use stops the process naming it', () => {
    const short = join(dir, 'short');
    writeFileSync(short, 'too-short');
    expect(() => callerGate({ ...none, jwtSecretFile: short })).toThrow(/at least 32/);
    expect(() => callerGate({ ...none, jwtSecretFile: secretFile, jwksFile: secretFile })).toThrow(/not both/);
  });
});
