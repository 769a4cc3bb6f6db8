import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveProfile } from '@yoco/embedder';
import { PROFILES } from '@yoco/models';
import { describe, expect, it } from 'vitest';

describe('model profiles', () => {
  it('built-in names resolve into the models folder; a user profile JSON resolves beside itself', () => {
    const builtIn = resolveProfile('face-resnet128', '/srv/models');
    expect(builtIn).toMatchObject({ builtIn: true, modelPath: '/srv/models/face-resnet128.onnx', profile: PROFILES['face-resnet128'] });
    const dir = mkdtempSync(join(tmpdir(), 'yoco-profile-'));
    const file = join(dir, 'mine.profile.json');
    writeFileSync(file, JSON.stringify({ id: 'my-net', model: 'my-net.onnx', input: 'x', output: 'y', size: [112, 112], mean: [127.5, 127.5, 127.5], std: [128, 128, 128], dim: 512 }));
    const user = resolveProfile(file, '/srv/models');
    expect(user.builtIn).toBe(false);
    expect(user.modelPath).toBe(join(dir, 'my-net.onnx'));
    expect(user.profile).toMatchObject({ id: 'my-net', dim: 512, channelOrder: 'rgb', fit: 'squash' });
    writeFileSync(file, JSON.stringify({ id: 'broken' }));
    expect(() => resolveProfile(file, '/srv/models')).toThrow(/lacks 'model'/);
    expect(() => resolveProfile('no-such-profile', '/srv/models')).toThrow(/neither a built-in profile .* nor a file/);
  });
});
