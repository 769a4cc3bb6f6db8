import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisBinaryMissingError } from './errors/index.js';
import { freePort } from '@yoco/common';

export interface RedisServerOptions {
  /** Port on 127.0.0.1; a free one when omitted. */
  port?: number;
  /** Data directory; a fresh temporary one (removed on stop) when omitted. */
  dir?: string;
  /** Turn on the append-only file (durability across restarts). */
  appendonly?: boolean;
  /** fsync policy of the append-only file (default everysec; always = no completed write is ever lost). */
  appendfsync?: 'always' | 'everysec';
  binary?: string;
  /** More redis-server arguments (--replicaof ..., or a config file and --sentinel). */
  args?: string[];
}

export interface RedisServerHandle {
  url: string;
  port: number;
  dir: string;
  process: ChildProcess;
  stop(): Promise<void>;
}


function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => {
      sock.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    sock.once('error', () => resolve(false));
  });
}

/** One command's raw reply (enough for INFO: a bulk string read until it is whole). */
function command(port: number, line: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    sock.once('connect', () => sock.write(`${line}\r\n`));
    sock.on('data', (d) => {
      data += d.toString();
      const m = /^\$(\d+)\r\n/.exec(data);
      if (!m || data.length >= m[0].length + Number(m[1])) {
        sock.destroy();
        resolve(data);
      }
    });
    sock.once('error', () => resolve(''));
  });
}

/** Starts redis-server on loopback and waits until it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const binary = options.binary ?? 'redis-server';
  if (spawnSync(binary, ['--version']).error) throw new RedisBinaryMissingError(binary);
  const port = options.port ?? (await freePort());
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'yoco-redis-'));
  mkdirSync(dir, { recursive: true });
  const args = [...(options.args ?? []), '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'];
  if (!options.args?.includes('--sentinel')) {
    args.push('--save', '', '--appendonly', options.appendonly ? 'yes' : 'no');
    if (options.appendonly) args.push('--appendfsync', options.appendfsync ?? 'everysec');
  }
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  let exited = false;
  child.once('exit', () => (exited = true));
  for (let i = 0; i < 100 && !(await ping(port)); i++) {
    if (exited) throw new Error(`redis-server exited at start (port ${port})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    if (!exited) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  return { url: `redis://127.0.0.1:${port}`, port, dir, process: child, stop };
}

/**
 * A replica that has not synced answers MASTERDOWN instead of its own (empty, or old) data: a shard
 * that reaches it by mistake retries instead of loading nothing.
 */
const REPLICA_ARGS = ['--replica-serve-stale-data', 'no'];

export interface RedisHaHandle {
  /** redis-sentinel://127.0.0.1:p1,.../yoco: what every process connects to. */
  url: string;
  masterName: string;
  sentinels: string[];
  /** The primary and its replica as started (after a failover the replica is the primary); one that dies is restarted. */
  servers: RedisServerHandle[];
  sentinelServers: RedisServerHandle[];
  stop(): Promise<void>;
}

/**
 * A primary, one replica and three sentinels on loopback, each a child process
 * (what `YOCO_REDIS_HA=1 npm start` runs): the sentinels fail the primary over
 * to the replica a second or two after it stops answering.
 */
export async function startRedisHa(options: { dir?: string; appendonly?: boolean; appendfsync?: 'always' | 'everysec'; masterName?: string } = {}): Promise<RedisHaHandle> {
  const masterName = options.masterName ?? 'yoco';
  const base = options.dir ?? mkdtempSync(join(tmpdir(), 'yoco-redis-ha-'));
  const started: RedisServerHandle[] = [];
  const stopAll = async () => {
    for (const h of started.reverse()) await h.stop();
  };
  try {
    const primary = await startRedisServer({ dir: join(base, 'primary'), appendonly: options.appendonly, appendfsync: options.appendfsync });
    started.push(primary);
    const replica = await startRedisServer({ dir: join(base, 'replica'), appendonly: options.appendonly, appendfsync: options.appendfsync, args: ['--replicaof', '127.0.0.1', String(primary.port), ...REPLICA_ARGS] });
    started.push(replica);
    // A write acknowledged by WAIT needs the replica in sync: wait for its link to the primary.
    for (let i = 0; i < 200 && !(await command(replica.port, 'INFO replication')).includes('master_link_status:up'); i++) await new Promise((r) => setTimeout(r, 50));
    const sentinels: RedisServerHandle[] = [];
    for (let i = 0; i < 3; i++) {
      const dir = join(base, `sentinel-${i}`);
      mkdirSync(dir, { recursive: true });
      // Sentinel rewrites its own file (what it learns of the topology): one writable file each.
      const conf = join(dir, 'sentinel.conf');
      writeFileSync(conf, [`sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 2`, `sentinel down-after-milliseconds ${masterName} 1000`, `sentinel failover-timeout ${masterName} 5000`, `sentinel parallel-syncs ${masterName} 1`, ''].join('\n'));
      const s = await startRedisServer({ dir, args: [conf, '--sentinel'] });
      started.push(s);
      sentinels.push(s);
    }
    const addresses = sentinels.map((s) => `127.0.0.1:${s.port}`);
    const servers = [primary, replica];
    let stopping = false;
    // A data server that dies (a killed primary) comes back on its port, as a replica of whichever is
    // primary now, so writes that need a replica's acknowledgement (REDIS_MIN_REPLICAS_ACK) resume.
    // Never before the sentinels have promoted another: a dead primary restarted at its own address
    // (and empty, without persistence) would be taken back as the primary, and its replica wiped.
    // The primary every sentinel names (0 while they disagree): a client asking a sentinel that has not
    // seen the failover yet must not be sent to the dead primary's address once it is back.
    const primaryPort = async (): Promise<number> => {
      const ports = await Promise.all(sentinels.map(async (sentinel) => Number(/\r\n(\d+)\r\n$/.exec(await command(sentinel.port, `SENTINEL get-master-addr-by-name ${masterName}`))?.[1] ?? 0)));
      return ports.every((p) => p === ports[0]) ? ports[0] : 0;
    };
    const watch = (i: number) =>
      servers[i].process.once('exit', async () => {
        const dead = servers[i].port;
        let now = 0;
        for (let t = 0; t < 600 && !stopping; t++) {
          now = await primaryPort();
          if (now && now !== dead) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        if (stopping || !now || now === dead) return;
        startRedisServer({ port: dead, dir: servers[i].dir, appendonly: options.appendonly, appendfsync: options.appendfsync, args: ['--replicaof', '127.0.0.1', String(now), ...REPLICA_ARGS] }).then(
          (h) => {
            const j = started.indexOf(servers[i]);
            if (j >= 0) started[j] = h;
            servers[i] = h;
            if (stopping) void h.stop();
            else watch(i);
          },
          () => watch(i),
        );
      });
    watch(0);
    watch(1);
    const stop = async () => {
      stopping = true;
      await stopAll();
    };
    return { url: `redis-sentinel://${addresses.join(',')}/${masterName}`, masterName, sentinels: addresses, servers, sentinelServers: sentinels, stop };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
