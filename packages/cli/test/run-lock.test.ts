import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireRunLock } from '@yoco/cli';
import { describe, expect, it } from 'vitest';

describe('the run lock of a data directory', () => {
  it('is taken once; a live owner refuses another; a dead owner (SIGKILLed) is taken over; garbage too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'yoco-lock-'));
    const release = acquireRunLock(dir, '127.0.0.1:50051');
    expect(JSON.parse(readFileSync(join(dir, 'yoco.pid'), 'utf8')).pid).toBe(process.pid);
    release();
    // Held by a live process (this test's parent stands in for another npm start).
    writeFileSync(join(dir, 'yoco.pid'), JSON.stringify({ pid: process.ppid, address: '127.0.0.1:50051', startedAt: '' }));
    expect(() => acquireRunLock(dir, 'x')).toThrow(`already running (pid ${process.ppid}) on 127.0.0.1:50051`);
    // Its owner is gone: taken over.
    writeFileSync(join(dir, 'yoco.pid'), JSON.stringify({ pid: 2 ** 22 + 17, address: 'a', startedAt: '' }));
    acquireRunLock(dir, 'b')();
    writeFileSync(join(dir, 'yoco.pid'), '{"pid": ');
    acquireRunLock(dir, 'c')();
  });
});
