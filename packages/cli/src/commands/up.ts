import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { parse, readEnv, type EnvSpec } from '@yoco/common';
import { GalleryStore } from '@yoco/gallery';
import { HEAD_ENV, resolveHead, type HeadConfig } from '@yoco/head';
import { Redis } from 'ioredis';
import { enrolDemoGallery } from '../demo-gallery.js';
import { LocalCluster } from '../local-cluster.js';

interface UpConfig extends HeadConfig {
  redisUrl: string;
  prefix: string;
  address: string;
  shards: number;
  replicas: number;
  demoSubjects: number;
  dataDir: string;
}

export const UP_ENV: EnvSpec<UpConfig> = {
  ...HEAD_ENV,
  redisUrl: { name: 'REDIS_URL', default: '', parse: parse.string, doc: 'use this Redis instead of spawning redis-server' },
  prefix: { name: 'YOCO_PREFIX', default: 'yoco:', parse: parse.string, doc: 'key prefix in Redis' },
  address: { name: 'GRPC_ADDRESS', default: '127.0.0.1:50051', parse: parse.address, doc: 'where the Matcher listens' },
  shards: { name: 'YOCO_SHARDS', default: 2, parse: parse.int(1, 64), doc: 'shard indexes k' },
  replicas: { name: 'YOCO_REPLICAS', default: 1, parse: parse.int(1, 8), doc: 'replicas per shard index' },
  demoSubjects: { name: 'YOCO_DEMO_SUBJECTS', default: 1000, parse: parse.int(0, 10_000_000), doc: 'demo subjects enrolled when the gallery is empty' },
  dataDir: { name: 'YOCO_DATA_DIR', default: '.yoco', parse: parse.string, doc: 'logs, Redis data and the demo probe' },
};

/** `npm start`: Redis, k shard workers and the coordinator as child processes; Ctrl-C stops them all. */
export async function up(): Promise<void> {
  const config = readEnv(UP_ENV);
  const head = await resolveHead(config);
  const dataDir = resolve(config.dataDir);
  const logDir = resolve(dataDir, 'logs');
  console.log(`starting YOCO: ${config.shards} shard(s) x ${config.replicas} replica(s), head ${head.id} (D=${head.dim}, H=${head.hidden})`);
  const cluster = await LocalCluster.start({
    shards: config.shards,
    replicas: config.replicas,
    redisUrl: config.redisUrl || undefined,
    redisDir: resolve(dataDir, 'redis'),
    redisAppendonly: true,
    prefix: config.prefix,
    coordinatorAddress: config.address,
    logDir,
    env: Object.fromEntries(
      Object.values(HEAD_ENV)
        .map((v) => [v.name, process.env[v.name] ?? ''])
        .filter(([, value]) => value !== ''),
    ),
  });
  const stop = async () => {
    console.log('\nstopping...');
    await cluster.stop();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const redis = new Redis(cluster.redisUrl);
  const store = new GalleryStore(redis, { prefix: config.prefix, dim: head.dim });
  const probeFile = resolve(dataDir, 'demo-probe.json');
  if (config.demoSubjects > 0 && (await store.streamInfo()).entriesAdded === 0) {
    // Through the real write path: Matcher.Enrol -> BullMQ -> enroller -> Redis -> change stream -> shards.
    const subject = await enrolDemoGallery(cluster.matcherClient(), head.dim, config.demoSubjects, probeFile);
    console.log(`enrolled ${config.demoSubjects} demo subjects; ${probeFile} is a probe of ${subject}`);
  }
  redis.disconnect();
  console.log(`\nYOCO Matcher listening on ${cluster.address} (Redis ${cluster.redisUrl}, logs in ${logDir})`);
  if (existsSync(probeFile)) console.log(`try:  npx yoco identify --vector-file ${probeFile}`);
  console.log('      npx yoco status');
  console.log('Ctrl-C stops everything.');
}
