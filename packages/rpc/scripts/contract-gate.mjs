#!/usr/bin/env node
// The contract's gate: `buf lint` on proto/, then `buf breaking` against the
// last released contract: the newest proto-v* git tag when the clone has it,
// else proto/contract/last-release.binpb (the same contract as a buf image,
// for clones without tags). Exit code: buf's. `--workspace DIR` checks another
// copy (a folder with buf.yaml and proto/; the gate's own test breaks one on purpose).
//
// Releasing a contract: git tag -a proto-vX.Y.Z, then
//   npx buf build '.git#tag=proto-vX.Y.Z,subdir=proto' -o proto/contract/last-release.binpb
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const args = process.argv.slice(2);
const workspace = args[0] === '--workspace' ? args[1] : root;
const buf = join(dirname(createRequire(import.meta.url).resolve('@bufbuild/buf/package.json')), 'bin/buf');

function newestTag() {
  try {
    const tags = execFileSync('git', ['-C', root, 'tag', '--list', 'proto-v*', '--sort=-v:refname'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return tags.split('\n').find(Boolean);
  } catch {
    return undefined;
  }
}

// CONTRACT_AGAINST_IMAGE=1: as a clone without tags would (the gate's test checks both references).
const tag = process.env.CONTRACT_AGAINST_IMAGE ? undefined : newestTag();
const image = join(root, 'proto/contract/last-release.binpb');
const against = tag ? `${join(root, '.git')}#tag=${tag},subdir=proto` : image;
if (!tag && !existsSync(image)) {
  console.error('no proto-v* tag and no proto/contract/last-release.binpb: nothing to compare the contract with');
  process.exit(2);
}
console.log(`contract gate: ${join(workspace, 'proto')} against ${tag ?? image}`);
for (const step of [['lint'], ['breaking', '--against', against]]) {
  const r = spawnSync(buf, step, { stdio: 'inherit', cwd: workspace });
  if (r.status !== 0) {
    console.error(`buf ${step[0]} failed`);
    process.exit(r.status ?? 1);
  }
}
console.log('contract gate: lint and breaking pass');
