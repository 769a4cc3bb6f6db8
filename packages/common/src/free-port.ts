import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

// A port handed out here is bound by a child a second or more later. Ports from the kernel's
// ephemeral range (what listen(0) and every outgoing connection take) can be taken by anyone in
// that window: CI saw a coordinator lose its port to another process's port-0 /metrics bind.
// So ports come from below that range, at random, and never twice from one process.
const FLOOR = 20000;
const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FLOOR + 1000 ? low : 0;
  } catch {
    return 0;
  }
}

function tryListen(port: number, host: string): Promise<number | null> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(null));
    s.listen({ port, host, exclusive: true }, () => {
      const addr = s.address();
      const bound = typeof addr === 'object' && addr ? addr.port : null;
      s.close(() => resolve(bound));
    });
  });
}

/** A TCP port free on 127.0.0.1 right now, outside the ephemeral range (for child processes that cannot bind port 0 and report back). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const low = ephemeralLow();
  if (low > 0) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = FLOOR + Math.floor(Math.random() * (low - FLOOR));
      if (handedOut.has(port)) continue;
      if ((await tryListen(port, host)) === port) {
        handedOut.add(port);
        return port;
      }
    }
  }
  const port = await tryListen(0, host);
  if (port === null) throw new Error(`no free TCP port on ${host}`);
  return port;
}
