import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep, getErrorMessage } from '@yoco/common';
import { COORDINATOR_IDENTITY, type LocalPki } from './local-pki.js';
import { startRedisHa, startRedisServer, type RedisHaHandle, type RedisServerHandle } from './redis-server.js';
import { loadProtos, makeClient, unary, type v1 } from '@yoco/rpc';

/**
 * V8 flags for every service process. A 64 MiB young generation: with the
 * default (16 MiB) a shard promoted in-flight request objects often enough to
 * run 1-5 full GCs (4-32 ms each) per 400 Identify calls; with it, none. (The
 * bench's p99 at concurrency 1 did not move measurably: other noise rules
 * it.) Memory is committed only as it is used.
 */
const SERVICE_NODE_ARGS = ['--max-semi-space-size=64'];

const SERVICE_MAIN = (name: string) => fileURLToPath(new URL(`../../../services/${name}/dist/main.js`, import.meta.url));

export interface LocalClusterOptions {
  /** Number of shard indexes k. */
  shards: number;
  /** Replicas per shard index (one number for all, or one per index). */
  replicas?: number | number[];
  /** Use this Redis; otherwise a redis-server is spawned (and stopped with the cluster). */
  redisUrl?: string;
  /** Data dir and durability of a spawned Redis. */
  redisDir?: string;
  /**
   * Spawn a primary, a replica and three sentinels instead of one Redis; every
   * process connects through the sentinels (REDIS_SENTINELS) and reports a
   * write only once a replica has it (REDIS_MIN_REPLICAS_ACK=1).
   */
  redisHa?: boolean;
  redisAppendonly?: boolean;
  /** fsync policy of its append-only file (default everysec; `npm start` runs it with always). */
  redisAppendfsync?: 'always' | 'everysec';
  prefix?: string;
  /** Where the Matcher listens; a free loopback port when omitted. */
  coordinatorAddress?: string;
  /** Extra environment for every process (YOCO_DIM, YOCO_HIDDEN, ...). */
  env?: Record<string, string>;
  /** Extra environment for one shard replica. */
  shardEnv?: (index: number, replica: number) => Record<string, string>;
  coordinatorEnv?: Record<string, string>;
  /** Start an embedder with this profile and give its address to the coordinator and enroller. */
  embedder?: { profile: string; env?: Record<string, string> };
  /** Start the enroller (BullMQ worker); default true. */
  enroller?: boolean;
  enrollerEnv?: Record<string, string>;
  /** Each process's stdout/stderr go to <logDir>/<name>.log. */
  logDir: string;
  /** How long start() waits for every replica to serve. */
  readyTimeoutMs?: number;
  /** Replicas of shard index i that start() waits to see healthy (default: all of them). */
  expectHealthy?: (index: number) => number;
  /**
   * Run secured: TLS on every port, mutual TLS from the coordinator to shards and embedder (the shards
   * allow only COORDINATOR_IDENTITY), tokens at the Matcher; `adminToken` is what matcherClient() sends.
   */
  secure?: { pki: LocalPki; adminToken: string };
  /**
   * Restart a process that dies on its own (not by kill() or stop()), with a backoff (1 s doubling to
   * 30 s), on the same address, and tell `onEvent` (what `yoco up` prints). Tests that kill processes
   * on purpose leave this off.
   */
  /** onReady: a process said it is ready (a restart, or a shard the topology added): what a cluster file lists has changed. */
  supervise?: { onEvent: (message: string) => void; onReady?: (name: string) => void };
  /**
   * Follow the topology (`yoco reshard`): start the replicas of shard indexes
   * a change adds, and stop those beyond k once they report SURPLUS. `onEvent`
   * hears of each start and stop.
   */
  followTopology?: { onEvent?: (message: string) => void; pollMs?: number };
}

export interface ProcessInfo {
  name: string;
  address: string;
  process: ChildProcess;
  env: Record<string, string>;
  script: string;
}

/**
 * A whole YOCO cluster on one machine, each service its own process: what
 * `npm start` runs and what the integration tests start and kill.
 */
export class LocalCluster {
  readonly shards = new Map<string, ProcessInfo & { index: number; replica: number }>();
  coordinator!: ProcessInfo;
  enroller: ProcessInfo | undefined;
  embedder: ProcessInfo | undefined;
  redisUrl = '';
  private redis: RedisServerHandle | undefined;
  /** The spawned primary, replica and sentinels (redisHa). */
  ha: RedisHaHandle | undefined;
  private matcher: v1.MatcherClient | undefined;
  /** /metrics port of each process by name, as its 'ready' line said. */
  readonly metricsPorts = new Map<string, number>();
  private readonly fatal = new Map<string, string>();
  private readonly intentional = new Set<ChildProcess>();
  private readonly restarts = new Map<string, number>();
  private stopping: Promise<void> | undefined;
  /** Set once the cluster was first ready: supervision restarts only what had started. */
  private up = false;
  /** k as the topology last said (start() waits for this many indexes). */
  shardCount: number;
  private topologyTimer: NodeJS.Timeout | undefined;
  private scaling = false;
  private addressesWritten = '';
  /** Every process of the cluster (Redis aside). */
  private get processes(): ProcessInfo[] {
    return [this.coordinator, ...this.shards.values(), this.enroller, this.embedder].filter((p): p is ProcessInfo => p !== undefined);
  }

  private processNamed(name: string): ProcessInfo | undefined {
    return this.processes.find((p) => p.name === name);
  }

  /** The pid of each running process, by name (for cluster.json). */
  get pids(): Map<string, number> {
    return new Map(this.processes.map((p) => [p.name, p.process.pid ?? 0]));
  }

  private constructor(readonly options: LocalClusterOptions) {
    this.shardCount = options.shards;
  }

  /** The replicas' addresses, one per line, re-read by the coordinator each refresh (SHARD_ADDRESSES_FILE). */
  private get addressesFile(): string {
    return join(this.options.logDir, 'shard-addresses');
  }

  /**
   * Written whole and renamed into place: the coordinator re-reads the file on
   * its own timer, and a file caught between truncate and write reads as no
   * replicas at all. Unchanged content is not rewritten.
   */
  private writeAddresses(): void {
    const text = [...this.shards.values()].map((s) => s.address).join('\n') + '\n';
    if (text === this.addressesWritten) return;
    const tmp = `${this.addressesFile}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, this.addressesFile);
    this.addressesWritten = text;
  }

  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const cluster = new LocalCluster(options);
    try {
      await cluster.boot();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  get address(): string {
    return this.coordinator.address;
  }

  replicaCount(index: number): number {
    const r = this.options.replicas ?? 1;
    return typeof r === 'number' ? r : (r[index] ?? 1);
  }

  private baseEnv(): Record<string, string> {
    // Shards share the machine's cores: give each its share instead of letting every one use them all.
    let processes = 0;
    for (let i = 0; i < this.shardCount; i++) processes += this.replicaCount(i);
    const share = String(Math.max(1, Math.floor(availableParallelism() / processes)));
    return {
      KERNEL_THREADS: share,
      ORT_THREADS: share,
      REDIS_URL: this.redisUrl,
      ...(this.ha ? { REDIS_SENTINELS: this.ha.sentinels.join(','), REDIS_MASTER_NAME: this.ha.masterName, REDIS_MIN_REPLICAS_ACK: '1' } : {}),
      YOCO_PREFIX: this.options.prefix ?? 'yoco:',
      METRICS_ADDRESS: '127.0.0.1:0',
      SHUTDOWN_GRACE_MS: '2000',
      ...this.options.env,
    };
  }

  private async boot(): Promise<void> {
    mkdirSync(this.options.logDir, { recursive: true });
    if (this.options.redisUrl) this.redisUrl = this.options.redisUrl;
    else if (this.options.redisHa) {
      this.ha = await startRedisHa({ dir: this.options.redisDir, appendonly: this.options.redisAppendonly, appendfsync: this.options.redisAppendfsync });
      this.redisUrl = this.ha.url;
    } else {
      this.redis = await startRedisServer({ dir: this.options.redisDir, appendonly: this.options.redisAppendonly, appendfsync: this.options.redisAppendfsync });
      this.redisUrl = this.redis.url;
    }
    for (let index = 0; index < this.options.shards; index++) {
      for (let replica = 0; replica < this.replicaCount(index); replica++) await this.startShard(index, replica);
    }
    this.writeAddresses();
    const addresses = [...this.shards.values()].map((s) => s.address);
    let embedderEnv: Record<string, string> = {};
    if (this.options.embedder) {
      const address = `127.0.0.1:${await freePort()}`;
      const env = { ...this.baseEnv(), ORT_THREADS: '0', GRPC_ADDRESS: address, EMBEDDER_PROFILE: this.options.embedder.profile, ...this.securityEnv('embedder'), ...this.options.embedder.env };
      const script = SERVICE_MAIN('embedder');
      this.embedder = { name: 'embedder', address, env, script, process: this.spawn('embedder', script, env) };
      embedderEnv = { EMBEDDER_ADDRESS: address };
    }
    if (this.options.enroller !== false) this.startEnroller();
    const address = this.options.coordinatorAddress ?? `127.0.0.1:${await freePort()}`;
    const env = { ...this.baseEnv(), GRPC_ADDRESS: address, SHARD_ADDRESSES: addresses.join(','), SHARD_ADDRESSES_FILE: this.addressesFile, SHARD_REFRESH_MS: '250', ...embedderEnv, ...this.securityEnv('coordinator'), ...this.options.coordinatorEnv };
    this.coordinator = { name: 'coordinator', address, env, script: SERVICE_MAIN('coordinator'), process: this.spawn('coordinator', SERVICE_MAIN('coordinator'), env) };
    await this.waitReady(this.options.readyTimeoutMs ?? 60_000, this.options.expectHealthy);
    this.up = true;
    if (this.options.followTopology) {
      this.topologyTimer = setInterval(() => void this.followTopology(), this.options.followTopology.pollMs ?? 500);
      this.topologyTimer.unref();
    }
  }

  /** Starts one shard replica on a free port (the index's SHARD_COUNT only seeds a store without a topology). */
  private async startShard(index: number, replica: number): Promise<void> {
    const address = `127.0.0.1:${await freePort()}`;
    const env = {
      ...this.baseEnv(),
      SHARD_INDEX: String(index),
      SHARD_COUNT: String(this.options.shards),
      GRPC_ADDRESS: address,
      ...this.securityEnv('shard'),
      ...this.options.shardEnv?.(index, replica),
    };
    const name = `shard-${index}${String.fromCharCode(97 + replica)}`;
    this.shards.set(name, { name, index, replica, address, env, script: SERVICE_MAIN('shard'), process: this.spawn(name, SERVICE_MAIN('shard'), env) });
  }

  /**
   * One look at the topology (through the Matcher): replicas for the indexes
   * of the epochs in play that have none, and a stop for those beyond k that
   * say they are SURPLUS (after the switch's grace: nothing asks them any more).
   */
  async followTopology(): Promise<void> {
    if (this.scaling || this.stopping) return;
    this.scaling = true;
    const say = this.options.followTopology?.onEvent ?? (() => undefined);
    try {
      const status = await unary(this.matcherClient(), 'ClusterStatus', {}, { deadline: Date.now() + 2000 });
      const t = status.topology;
      if (!t) return;
      this.shardCount = t.shardCount;
      const wanted = Math.max(t.shardCount, t.next?.shardCount ?? 0);
      let changed = false;
      for (let index = 0; index < wanted; index++) {
        if ([...this.shards.values()].some((s) => s.index === index)) continue;
        for (let replica = 0; replica < this.replicaCount(index); replica++) await this.startShard(index, replica);
        say(`shard ${index}: started ${this.replicaCount(index)} replica(s) for epoch ${t.next?.epoch ?? t.epoch} (k=${t.next?.shardCount ?? t.shardCount})`);
        changed = true;
      }
      const surplus = new Set(status.shards.flatMap((sh) => sh.replicas.filter((r) => r.state === 'SURPLUS').map((r) => r.address)));
      for (const s of [...this.shards.values()]) {
        if (s.index < wanted || !surplus.has(s.address)) continue;
        this.shards.delete(s.name);
        this.writeAddresses();
        this.intentional.add(s.process);
        await stopChild(s.process, 'SIGTERM');
        say(`${s.name}: stopped (index ${s.index} is beyond k=${t.shardCount})`);
        changed = true;
      }
      if (changed) this.writeAddresses();
    } catch (err) {
      // The Matcher is restarting, say: the next look will do.
      say(`topology not followed this time: ${getErrorMessage(err)}`);
    } finally {
      this.scaling = false;
    }
  }

  /** Starts the enroller (again, after kill()). */
  startEnroller(): void {
    const secure: Record<string, string> = this.options.secure ? { TEMPLATE_KEYS_FILE: this.options.secure.pki.templateKeysFile } : {};
    const env = { ...this.baseEnv(), ...secure, ...this.options.enrollerEnv };
    const script = SERVICE_MAIN('enroller');
    this.enroller = { name: 'enroller', address: '', env, script, process: this.spawn('enroller', script, env) };
  }

  private spawn(name: string, script: string, env: Record<string, string>): ChildProcess {
    const log = createWriteStream(join(this.options.logDir, `${name}.log`), { flags: 'a' });
    const child = spawn(process.execPath, [...SERVICE_NODE_ARGS, script], { env: childEnv(script, { ...process.env, ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    child.once('exit', () => log.end());
    // The one 'ready' line says where its /metrics is (METRICS_ADDRESS port 0 picks a free one); a fatal
    // line says why it stopped (shown in the terminal instead of a log file's path).
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const fatal = line.includes('"level":60');
      if (!fatal && !line.includes('"msg":"ready"')) return;
      try {
        const entry = JSON.parse(line) as { msg?: string; err?: string; metricsPort?: number };
        if (fatal) this.fatal.set(name, [entry.msg, entry.err].filter(Boolean).join(': '));
        else {
          if (Number(entry.metricsPort) > 0) this.metricsPorts.set(name, Number(entry.metricsPort));
          if (this.up) this.options.supervise?.onReady?.(name);
        }
      } catch {
        // not a log line of ours
      }
    });
    child.once('exit', (code, signal) => this.exited(name, script, env, child, code, signal));
    return child;
  }

  /** Why a process stopped: its last fatal log line, else where its log is. */
  reason(name: string): string {
    return this.fatal.get(name) ?? `see ${join(this.options.logDir, `${name}.log`)}`;
  }

  private exited(name: string, script: string, env: Record<string, string>, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const supervise = this.options.supervise;
    // Before the cluster was first ready, an exit is a failed start (a wrong setting, say): reported, not retried for a minute.
    if (!supervise || !this.up || this.stopping || this.intentional.delete(child)) return;
    const backoff = Math.min(30_000, 1000 * 2 ** (this.restarts.get(name) ?? 0));
    this.restarts.set(name, (this.restarts.get(name) ?? 0) + 1);
    supervise.onEvent(`${name} exited (${signal ?? `code ${code}`}): ${this.reason(name)}; restarting in ${backoff / 1000} s`);
    this.fatal.delete(name);
    setTimeout(() => {
      if (this.stopping) return;
      const next = this.spawn(name, script, env);
      const info = this.processNamed(name);
      if (info) info.process = next;
    }, backoff).unref();
  }

  matcherClient(): v1.MatcherClient {
    const secure = this.options.secure;
    this.matcher ??= makeClient(loadProtos().Matcher, this.address, {}, secure ? { tls: { caFile: secure.pki.caFile }, token: secure.adminToken } : {});
    return this.matcher;
  }

  /** The environment that secures one service (nothing when the cluster is not secure). */
  private securityEnv(service: 'shard' | 'embedder' | 'coordinator'): Record<string, string> {
    const pki = this.options.secure?.pki;
    if (!pki) return {};
    if (service === 'coordinator') {
      const own = pki.servers.matcher;
      return {
        TLS_CERT_FILE: own.cert,
        TLS_KEY_FILE: own.key,
        TLS_CA_FILE: pki.caFile,
        TLS_CLIENT_CERT_FILE: pki.coordinator.cert,
        TLS_CLIENT_KEY_FILE: pki.coordinator.key,
        AUTH_JWT_SECRET_FILE: pki.jwtSecretFile,
      };
    }
    const own = pki.servers[service];
    return { TLS_CERT_FILE: own.cert, TLS_KEY_FILE: own.key, TLS_CLIENT_CA_FILE: pki.caFile, TLS_PEER_NAMES: COORDINATOR_IDENTITY, TEMPLATE_KEYS_FILE: pki.templateKeysFile };
  }

  /** Resolves when the coordinator reports every expected replica SERVING. */
  async waitReady(timeoutMs = 60_000, expect?: (index: number) => number): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last = 'no answer yet';
    while (Date.now() < until) {
      // A process that stopped before the cluster was ready: its reason, not only where its log is.
      for (const p of this.processes) {
        if (p.process.exitCode !== null && p.process.signalCode === null && !(this.options.supervise && this.up)) throw new Error(`${p.name} exited (code ${p.process.exitCode}): ${this.reason(p.name)}`);
      }
      try {
        const status = await unary(this.matcherClient(), 'ClusterStatus', {}, { deadline: Date.now() + 2000 });
        const ok =
          status.shardCount === this.shardCount &&
          status.shards.every((s) => s.index >= this.shardCount || s.replicas.filter((r) => r.healthy).length >= (expect ?? ((i) => this.replicaCount(i)))(s.index));
        if (ok) return;
        last = JSON.stringify(status.shards.map((s) => [s.index, s.replicas.map((r) => r.state)]));
      } catch (err) {
        last = getErrorMessage(err);
      }
      await sleep(100);
    }
    throw new Error(`cluster not ready after ${timeoutMs} ms: ${last}`);
  }

  /** Kills one process ('shard-0a', 'enroller', ...; SIGKILL by default) and waits for it to exit. */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.processNamed(name);
    if (!p) throw new Error(`no process ${name}`);
    this.intentional.add(p.process);
    await stopChild(p.process, signal);
  }

  /** Sends a signal without waiting (SIGSTOP freezes a process, SIGCONT wakes it). */
  signal(name: string, signal: NodeJS.Signals): void {
    const p = this.processNamed(name);
    if (!p) throw new Error(`no process ${name}`);
    p.process.kill(signal);
  }

  /** Starts a killed replica again on the same address. */
  restart(name: string): void {
    const s = this.shards.get(name);
    if (!s) throw new Error(`no shard ${name}`);
    s.process = this.spawn(s.name, s.script, s.env);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.topologyTimer) clearInterval(this.topologyTimer);
      this.matcher?.close();
      const all = [...this.shards.values()].map((s) => s.process);
      if (this.coordinator) all.push(this.coordinator.process);
      if (this.enroller) all.push(this.enroller.process);
      if (this.embedder) all.push(this.embedder.process);
      // A frozen process (a test's SIGSTOP) only acts on SIGTERM once it runs again.
      for (const p of all) if (p.exitCode === null && p.signalCode === null) p.kill('SIGCONT');
      await Promise.all(all.map((p) => stopChild(p, 'SIGTERM')));
      await this.redis?.stop();
      await this.ha?.stop();
    })();
    return this.stopping;
  }
}

/** Sends `signal`, then SIGKILL if the process is still there after 5 s. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * What a child gets of the YOCO_* settings: only those it reads. A service
 * takes an unknown YOCO_* variable for a typo (--check-config fails on it),
 * and the head's settings (YOCO_DIM, YOCO_HIDDEN, YOCO_HEAD_*, YOCO_MODEL_ID)
 * are the shards' alone.
 */
export function childEnv(script: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (/services\/shard\//.test(script)) return env;
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('YOCO_') || k === 'YOCO_PREFIX' || k === 'YOCO_FAILPOINTS'));
}
