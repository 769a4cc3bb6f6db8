import { resolve } from 'node:path';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { acquireRunLock } from '../run-lock.js';
import { clusterFile } from '../cluster-file.js';
import { createServer } from 'node:net';
import { getErrorMessage, parse, readEnv, splitAddress, type EnvSpec, withTimeout } from '@yoco/common';
import { connectRedis, GalleryStore } from '@yoco/gallery';
import { HEAD_ENV, resolveHead, type HeadConfig } from '@yoco/service';
import { buildModels, MODELS_DIR, PROFILES } from '@yoco/models';
import { DEMO_PHOTOS, enrolDemoGallery, enrolDemoPhotos } from '../demo-gallery.js';
import { calibrateDemo } from '../demo-calibration.js';
import { buildDefaultHead } from '@yoco/train';
import { LocalCluster, makeLocalPki, mintToken, type LocalPki } from '@yoco/devkit';

interface UpConfig extends HeadConfig {
  redisUrl: string;
  prefix: string;
  address: string;
  shards: number;
  replicas: number;
  demoSubjects: number;
  calibrateDemo: boolean;
  dataDir: string;
  profile: string;
  secure: boolean;
  redisHa: boolean;
  trainedHead: boolean;
}

export const UP_ENV: EnvSpec<UpConfig> = {
  ...HEAD_ENV,
  redisUrl: { name: 'REDIS_URL', default: '', parse: parse.string, doc: 'use this Redis instead of spawning redis-server' },
  prefix: { name: 'YOCO_PREFIX', default: 'yoco:', parse: parse.string, doc: 'key prefix in Redis' },
  address: { name: 'GRPC_ADDRESS', default: '127.0.0.1:50051', parse: parse.address, doc: 'where the Matcher listens' },
  shards: { name: 'YOCO_SHARDS', default: 2, parse: parse.int(1, 64), doc: 'shard indexes k' },
  replicas: { name: 'YOCO_REPLICAS', default: 1, parse: parse.int(1, 8), doc: 'replicas per shard index' },
  calibrateDemo: { name: 'YOCO_CALIBRATE_DEMO', default: true, parse: parse.bool, doc: 'at the first start, calibrate the threshold for the demo gallery from photos it does not hold (FPIR 0.01); written to <YOCO_DATA_DIR>/threshold.json' },
  demoSubjects: { name: 'YOCO_DEMO_SUBJECTS', default: 1000, parse: parse.int(0, 10_000_000), doc: 'demo subjects enrolled when the gallery is empty' },
  dataDir: { name: 'YOCO_DATA_DIR', default: '.yoco', parse: parse.string, doc: 'logs, Redis data and the demo probe' },
  redisHa: { name: 'YOCO_REDIS_HA', default: false, parse: parse.bool, doc: 'a Redis primary, one replica and three sentinels (child processes) instead of one Redis; a write is reported once the replica has it' },
  secure: { name: 'YOCO_SECURE', default: false, parse: parse.bool, doc: 'TLS, mutual TLS and tokens: a local CA, certificates and tokens under <YOCO_DATA_DIR>/secure' },
  trainedHead: {
    name: 'YOCO_TRAINED_HEAD',
    default: true,
    parse: parse.bool,
    doc: 'resnet50-ms3840 without YOCO_HEAD_PATH: train a head on the photo benchmark at the first start (cached in models/) and use it when it beats the metric head on held-out identities',
  },
  profile: { name: 'YOCO_PROFILE', default: 'resnet50-ms3840', parse: parse.string, doc: 'embedding profile of the whole cluster: resnet50-ms3840 or face-resnet128' },
};

/**
 * The Redis `npm start` spawns: the store of record of enrolments, so an
 * acknowledged write is on disk before it is acknowledged (bench:enrol
 * measures what that costs).
 */
export const UP_REDIS = { appendonly: true, appendfsync: 'always' } as const;

/** `npm start`: Redis, k shard workers and the coordinator as child processes; Ctrl-C stops them all. */
export async function up(): Promise<void> {
  // One setting picks the profile; the metric head follows its width and scale unless told otherwise.
  const profileName = process.env.YOCO_PROFILE || 'resnet50-ms3840';
  const profile = PROFILES[profileName as keyof typeof PROFILES];
  if (!profile) throw new Error(`YOCO_PROFILE: '${profileName}' is not one of ${Object.keys(PROFILES).join(', ')}`);
  const headEnv: Record<string, string> = { YOCO_DIM: String(profile.dim), YOCO_MODEL_ID: profile.id };
  if (profile.headTau) headEnv.YOCO_HEAD_TAU = String(profile.headTau);
  if (profile.headAlpha) headEnv.YOCO_HEAD_ALPHA = String(profile.headAlpha);
  if (profile.headHidden) headEnv.YOCO_HIDDEN = String(profile.headHidden);
  for (const [k, v] of Object.entries(headEnv)) if (!process.env[k]) process.env[k] = v;
  let config = readEnv(UP_ENV);
  console.log(`building models if missing (${MODELS_DIR})`);
  await buildModels(MODELS_DIR, false, (m) => console.log(m));
  const dataDir = resolve(config.dataDir);
  if (profile.id === 'resnet50-ms3840' && !config.headPath && config.trainedHead) {
    // The best head that can be built offline: trained once on the photo benchmark, kept only if it measures better.
    const started = Date.now();
    const trained = await buildDefaultHead(MODELS_DIR, (m) => console.log(m)).catch((err: unknown) => {
      console.log(`trained head: not built (${getErrorMessage(err)}); the metric head serves`);
      return undefined;
    });
    if (trained) {
      console.log(`trained head: ${trained.reason} (${((Date.now() - started) / 1000).toFixed(1)} s here; trained in ${((trained.trainMs ?? 0) / 1000).toFixed(1)} s on ${trained.builtAt})`);
      // A gallery already scored by another head keeps it: shards of a new head would not serve it (HEAD_MISMATCH).
      const onRecord = await galleryHead(config, dataDir, async () => (await resolveHead(config)).id);
      if (trained.adopted && trained.head && onRecord && onRecord !== trained.headId) {
        console.log(`  this gallery's head is ${onRecord}: kept. \`npx yoco rollout-head ${resolve(MODELS_DIR, trained.head)}\` moves it to the trained head (or start with a fresh YOCO_DATA_DIR)`);
      } else if (trained.adopted && trained.head) {
        console.log('  in use');
        process.env.YOCO_HEAD_PATH = resolve(MODELS_DIR, trained.head);
        config = readEnv(UP_ENV);
      } else {
        console.log('  not used: the metric head serves');
      }
    }
  }
  const head = await resolveHead(config);
  if (head.dim !== profile.dim) throw new Error(`the head takes ${head.dim}-wide vectors but profile ${profile.id} gives ${profile.dim}`);
  const logDir = resolve(dataDir, 'logs');
  // One `npm start` per data directory (its Redis files, its logs); a lock left by a killed one is taken over.
  const release = acquireRunLock(dataDir, config.address);
  process.once('exit', release);
  // Before the shards record it in the store: the next start then knows which head this gallery has.
  writeFileSync(resolve(dataDir, HEAD_RECORD), `${JSON.stringify({ head_id: head.id, head_path: config.headPath || 'metric' })}\n`);
  if (config.redisUrl) await checkRedis(config.redisUrl);
  // The readiness check must be answered by this start's own Matcher, not by whatever already listens there.
  await checkFree(config.address);
  console.log(`starting YOCO: ${config.shards} shard(s) x ${config.replicas} replica(s), head ${head.id} (D=${head.dim}, H=${head.hidden})`);
  const secure = config.secure ? await securePki(resolve(dataDir, 'secure')) : undefined;
  let writeClusterJson: (() => void) | undefined;
  const thresholdFile = resolve(dataDir, 'threshold.json');
  const cluster = await LocalCluster.start({
    // A restarted process has another pid and metrics port: cluster.json follows (once it was first written).
    supervise: { onEvent: (m) => console.log(m), onReady: () => writeClusterJson?.() },
    // `yoco reshard` against this cluster: shards of a new index start here, surplus ones stop.
    followTopology: { onEvent: (m) => console.log(m) },
    secure: secure && { pki: secure.pki, adminToken: secure.tokens.admin },
    shards: config.shards,
    replicas: config.replicas,
    redisUrl: config.redisUrl || undefined,
    redisHa: config.redisHa && !config.redisUrl,
    redisDir: resolve(dataDir, config.redisHa ? 'redis-ha' : 'redis'),
    redisAppendonly: UP_REDIS.appendonly,
    redisAppendfsync: UP_REDIS.appendfsync,
    prefix: config.prefix,
    coordinatorAddress: config.address,
    logDir,
    embedder: { profile: profile.id },
    // Beside Redis' data, not in it: what `yoco restore --removal-log` re-applies after restoring a backup.
    enrollerEnv: { REMOVAL_LOG_DIR: process.env.REMOVAL_LOG_DIR || resolve(dataDir, 'removals') },
    // The threshold yoco calibrate writes (and the first start's demo calibration); re-read when it changes.
    coordinatorEnv: { THRESHOLD_FILE: process.env.THRESHOLD_FILE || thresholdFile },
    env: {
      YOCO_MODEL_ID: profile.id,
      ...Object.fromEntries(
        Object.values(HEAD_ENV)
          .map((v) => [v.name, process.env[v.name] ?? ''])
          .filter(([, value]) => value !== ''),
      ),
    },
  });
  const stop = async () => {
    console.log('\nstopping...');
    await cluster.stop();
    rmSync(clusterFile(dataDir), { force: true });
    release();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const redis = connectRedis(cluster.redisUrl, 'tool');
  const store = new GalleryStore(redis, { prefix: config.prefix, dim: head.dim });
  const probeFile = resolve(dataDir, 'demo-probe.json');
  const photoProbe = resolve(dataDir, 'demo-probe.jpg');
  // The demo is enrolled until it is complete: one interrupted (Ctrl-C) is finished at the next start.
  // Its vectors are seeded and template ids are content digests, so enrolling again adds nothing twice.
  const demoDone = resolve(dataDir, 'demo.done');
  const fresh = (await store.streamInfo()).entriesAdded === 0;
  if (config.demoSubjects > 0 && (fresh || existsSync(resolve(dataDir, 'demo.started'))) && !existsSync(demoDone)) {
    writeFileSync(resolve(dataDir, 'demo.started'), '');
    // Through the real write path: Matcher.Enrol -> BullMQ -> enroller -> Redis -> change stream -> shards.
    const subject = await enrolDemoGallery(cluster.matcherClient(), head.dim, config.demoSubjects, probeFile);
    console.log(`enrolled ${config.demoSubjects} demo subjects; ${probeFile} is a probe of ${subject}`);
    const photo = await enrolDemoPhotos(cluster.matcherClient(), DEMO_PHOTOS, photoProbe);
    console.log(`enrolled ${DEMO_PHOTOS}'s photos through the embedder; ${photoProbe} is an altered copy of ${photo}`);
    writeFileSync(demoDone, '');
    rmSync(resolve(dataDir, 'demo.started'), { force: true });
  }
  redis.disconnect();
  // After the demo, once: a threshold from strangers' searches rather than the constant (an interrupted one is redone).
  // Also when the head changed since (a threshold is a property of the head that scored it).
  if (config.demoSubjects > 0 && config.calibrateDemo && existsSync(demoDone) && !calibratedFor(thresholdFile, head.id) && !process.env.THRESHOLD_FILE) {
    const c = await calibrateDemo(cluster.matcherClient(), thresholdFile, (m) => console.log(m)).catch((err: unknown) => {
      console.log(`demo calibration skipped: ${getErrorMessage(err)}`);
      return undefined;
    });
    if (!c) console.log('threshold: DEFAULT_THRESHOLD (no demo calibration)');
  }
  console.log(`\nYOCO Matcher listening on ${cluster.address} (Redis ${redactUrl(cluster.redisUrl)}, logs in ${logDir})`);
  if (secure) {
    console.log(`secured: TLS (CA ${secure.pki.caFile}), mutual TLS to the shards and the embedder, tokens in ${secure.tokensFile} (identify, enrol, admin)`);
    console.log(`  export YOCO_CA_FILE=${secure.pki.caFile} YOCO_TOKEN=$(node -p "require('${secure.tokensFile}').admin")`);
  } else {
    console.log('INSECURE: plaintext, no authentication (loopback only); YOCO_SECURE=1 npm start runs it with TLS and tokens');
  }
  console.log('metrics:');
  for (const [name, port] of [...cluster.metricsPorts].sort()) console.log(`  http://127.0.0.1:${port}/metrics  (${name})`);
  // What the CLI reads when given no address: this cluster's endpoints (no secret in it, only where they are).
  writeClusterJson = (): void => {
    const file = clusterFile(dataDir);
    // Whole or not at all: a CLI reading it mid-write would see no Matcher.
    writeFileSync(
      `${file}.tmp`,
      `${JSON.stringify(
        {
          matcher: cluster.address,
          redis: redactUrl(cluster.redisUrl),
          pid: process.pid,
          caFile: secure?.pki.caFile,
          tokensFile: secure?.tokensFile,
          processes: [...cluster.pids].map(([name, pid]) => ({ name, pid, metrics: cluster.metricsPorts.has(name) ? `http://127.0.0.1:${cluster.metricsPorts.get(name)}/metrics` : '' })),
        },
        null,
        2,
      )}\n`,
    );
    renameSync(`${file}.tmp`, file);
  };
  writeClusterJson();
  if (existsSync(photoProbe)) console.log(`try:  npx yoco identify ${photoProbe}`);
  if (existsSync(probeFile)) console.log(`      npx yoco identify --vector-file ${probeFile}`);
  console.log('      npx yoco status');
  console.log('Ctrl-C stops everything.');
}

/** A URL as it may be shown: its password replaced. */
export function redactUrl(url: string): string {
  // redis-sentinel://[:password@]h1:p1,h2:p2/name is not a WHATWG URL (several hosts): its password is cut by hand.
  if (url.startsWith('redis-sentinel://')) return url.replace(/^redis-sentinel:\/\/[^@/]*@/, 'redis-sentinel://:***@').replace(/sentinelPassword=[^&]*/, 'sentinelPassword=***');
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparseable URL)';
  }
}

/** The local PKI and three tokens (identify, enrol, admin) for YOCO_SECURE=1; tokens.json is readable by the owner only. */
async function securePki(dir: string): Promise<{ pki: LocalPki; tokens: Record<'identify' | 'enrol' | 'admin', string>; tokensFile: string }> {
  const pki = makeLocalPki(dir);
  const secret = readFileSync(pki.jwtSecretFile, 'utf8');
  const tokens = {
    identify: await mintToken(secret, 'local-identify', ['identify']),
    enrol: await mintToken(secret, 'local-enrol', ['enrol']),
    admin: await mintToken(secret, 'local-admin', ['admin']),
  };
  const tokensFile = resolve(dir, 'tokens.json');
  writeFileSync(tokensFile, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600 });
  return { pki, tokens, tokensFile };
}

/** Before anything starts: a Redis that cannot be reached is named (without its password) with the reason. */
async function checkRedis(url: string): Promise<void> {
  const redis = connectRedis(url, 'tool');
  try {
    await withTimeout(redis.ping(), 3000, 'no answer in 3 s');
  } catch (err) {
    throw new Error(`cannot reach Redis at ${redactUrl(url)}: ${getErrorMessage(err)}`);
  } finally {
    redis.disconnect();
  }
}

/** The Matcher's address must be free: another YOCO (another data directory) or any other server there is named. */
async function checkFree(address: string): Promise<void> {
  const [host, port] = splitAddress(address);
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'EADDRINUSE' ? `${address} is already in use (another npm start with another YOCO_DATA_DIR?): stop it, or set GRPC_ADDRESS` : `cannot listen on ${address}: ${err.message}`)),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/** Whether the threshold file holds a calibration of this head. */
function calibratedFor(file: string, headId: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { head_id?: string }).head_id === headId;
  } catch {
    return false;
  }
}

/**
 * The head the gallery npm start is about to serve was scored with: the
 * store's record (an external REDIS_URL), else what the last start in this
 * data directory wrote, else, for a data directory that holds a Redis from
 * before that record existed, the metric head (all npm start ran then).
 * Undefined for a new gallery.
 */
export async function galleryHead(config: Pick<UpConfig, 'redisUrl' | 'prefix' | 'redisHa'>, dataDir: string, metricId: () => Promise<string>): Promise<string | undefined> {
  if (config.redisUrl) {
    const redis = connectRedis(config.redisUrl, 'tool');
    try {
      return (await new GalleryStore(redis, { prefix: config.prefix, dim: PROFILES['resnet50-ms3840'].dim }).storedHead()) || undefined;
    } finally {
      redis.disconnect();
    }
  }
  try {
    return (JSON.parse(readFileSync(resolve(dataDir, HEAD_RECORD), 'utf8')) as { head_id: string }).head_id;
  } catch {
    return existsSync(resolve(dataDir, config.redisHa ? 'redis-ha' : 'redis')) ? metricId() : undefined;
  }
}

/** Where a start records the head its gallery is scored with (read by galleryHead). */
export const HEAD_RECORD = 'head.json';
