import { openSync, readFileSync, unlinkSync, writeSync, closeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AlreadyRunningError } from './errors/already-running-error.js';

interface Owner {
  pid: number;
  address: string;
  startedAt: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One `npm start` per data directory: `<dir>/yoco.pid` is created
 * exclusively (O_EXCL) and names its owner. A second start finds it and
 * refuses, naming the running one; a lock whose owner is gone (killed with
 * SIGKILL) is stale and taken over. Returns the release function.
 */
export function acquireRunLock(dir: string, address: string): () => void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'yoco.pid');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, JSON.stringify({ pid: process.pid, address, startedAt: new Date().toISOString() } satisfies Owner));
      closeSync(fd);
      return () => {
        try {
          if ((JSON.parse(readFileSync(path, 'utf8')) as Owner).pid === process.pid) unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner: Owner | undefined;
      try {
        owner = JSON.parse(readFileSync(path, 'utf8')) as Owner;
      } catch {
        owner = undefined; // half-written or garbage: nobody holds it
      }
      if (owner && owner.pid !== process.pid && alive(owner.pid)) throw new AlreadyRunningError(owner.pid, owner.address, dir);
      unlinkSync(path);
    }
  }
  throw new Error(`could not take the lock ${path}`);
}
