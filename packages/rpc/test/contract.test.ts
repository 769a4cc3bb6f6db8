import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const GATE = join(ROOT, 'packages/rpc/scripts/contract-gate.mjs');
const gate = (...args: string[]) => spawnSync(process.execPath, [GATE, ...args], { encoding: 'utf8', timeout: 60_000 });
const gateOnImage = (...args: string[]) => spawnSync(process.execPath, [GATE, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, CONTRACT_AGAINST_IMAGE: '1' } });

const copies: string[] = [];
afterAll(() => copies.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of buf.yaml and proto/ with `edit` applied to one file. */
function editedContract(file: string, edit: (text: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'yoco-contract-'));
  copies.push(dir);
  cpSync(join(ROOT, 'buf.yaml'), join(dir, 'buf.yaml'));
  cpSync(join(ROOT, 'proto'), join(dir, 'proto'), { recursive: true });
  const path = join(dir, 'proto/yoco/v1', file);
  const before = readFileSync(path, 'utf8');
  const after = edit(before);
  expect(after).not.toBe(before);
  writeFileSync(path, after);
  return dir;
}

describe('the contract gate (buf lint + breaking against the last released contract)', () => {
  it('passes for proto/ as it is', () => {
    const r = gate();
    expect(r.stdout + r.stderr).toContain('lint and breaking pass');
    expect(r.status).toBe(0);
    // A clone without tags compares with the committed image of the same release.
    const i = gateOnImage();
    expect(i.stdout).toContain('last-release.binpb');
    expect(i.status).toBe(0);
  });

  it('fails a change that breaks callers on the wire, naming it', () => {
    // top_k from uint32 to string: every caller's encoding of it breaks.
    const dir = editedContract('matcher.proto', (t) => t.replace(/uint32 top_k = 2;/, 'string top_k = 2;'));
    for (const r of [gate('--workspace', dir), gateOnImage('--workspace', dir)]) {
      expect(r.status).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/top_k.*changed type/i);
    }
  });

  it('fails a deleted field that callers may still send', () => {
    const dir = editedContract('shard.proto', (t) => t.replace(/\n\s*string lane = 6;/, ''));
    const r = gate('--workspace', dir);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/field "6".*lane.*deleted|Previously present field "6"/i);
  });

  it('lets an added field through, and lints style', () => {
    const added = editedContract('embedder.proto', (t) => t.replace('uint32 dim = 2;', 'uint32 dim = 2;\n  string note = 9;'));
    expect(gate('--workspace', added).status).toBe(0);
    const badName = editedContract('embedder.proto', (t) => t.replace('uint32 dim = 2;', 'uint32 dim = 2;\n  string BadName = 9;'));
    const r = gate('--workspace', badName);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/BadName.*lower_snake_case/);
  });
});
