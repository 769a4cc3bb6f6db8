import { type RedisServerHandle, LocalCluster, type LocalClusterOptions } from '@yoco/devkit';
import { rawUnary } from './raw-unary.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@yoco/common';

import { GalleryStore, StoreKeys } from '@yoco/gallery';
import { unary } from '@yoco/rpc';
import type * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { connect, flushPrefix, redisUrl } from './redis.js';

/** Small vectors keep 5000-subject galleries quick to load; the cluster runs the same code at any D. */
export const DIM = 64;
export const HIDDEN = 32;
export const HEAD_ENV = { YOCO_DIM: String(DIM), YOCO_HIDDEN: String(HIDDEN), KERNEL_THREADS: '1' };

/**
 * A cluster of `shards` indexes over the gallery under `prefix`. Each start is
 * a fresh deployment: the topology on record (which SHARD_COUNT only seeds) is
 * cleared first, so a file may start k=1 and then k=3 over one gallery.
 */
export async function startCluster(prefix: string, options: Partial<LocalClusterOptions> & { shards: number }): Promise<LocalCluster> {
  const redis = connect();
  await redis.del(new StoreKeys(prefix).topology);
  redis.disconnect();
  return LocalCluster.start({
    redisUrl: redisUrl(),
    prefix,
    logDir: mkdtempSync(join(tmpdir(), 'yoco-test-logs-')),
    ...options,
    env: { ...HEAD_ENV, ...options.env },
  });
}

/**
 * After a test: stops its cluster, then a Redis of its own (woken first, in
 * case the test froze it), and flushes the key prefixes it wrote under.
 */
export async function cleanUp(cluster: LocalCluster | undefined, redis: RedisServerHandle | undefined, prefixes: string[]): Promise<void> {
  redis?.process.kill('SIGCONT');
  await cluster?.stop();
  await redis?.stop();
  const r = connect();
  for (const p of prefixes.splice(0)) await flushPrefix(r, p);
  r.disconnect();
}

export function unitVector(rng: Rng, dim = DIM): Float32Array {
  const v = rng.normals(dim);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

export interface Gallery {
  subjects: Map<string, Float32Array[]>;
}

/** Writes `count` random subjects (1-3 unit templates each) through the store, `concurrency` at a time. */
export async function writeGallery(prefix: string, count: number, seed: number, concurrency = 32): Promise<Gallery> {
  const rng = new Rng(seed);
  const subjects = new Map<string, Float32Array[]>();
  for (let i = 0; i < count; i++) subjects.set(`p${seed}-${i}`, Array.from({ length: 1 + rng.int(3) }, () => unitVector(rng)));
  const redis = new Redis(redisUrl());
  const store = new GalleryStore(redis, { prefix, dim: DIM });
  await store.checkMeta();
  const entries = [...subjects.entries()];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < entries.length) {
        const [id, vectors] = entries[next++];
        await store.put(id, vectors);
      }
    }),
  );
  redis.disconnect();
  return { subjects };
}

export interface IdentifyReply {
  matches: { subjectId: string; score: number; templateId: string; accepted: boolean }[];
  partial: boolean;
  missingShards: number[];
  gallerySize: number;
  threshold: number;
}

export function identify(client: grpc.Client, vector: Float32Array | number[], extra: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<IdentifyReply> {
  return rawUnary(client, 'Identify', { probe: { vector: { values: Array.from(vector) } }, ...extra }, { deadline: Date.now() + timeoutMs });
}

export interface EnrolReply {
  jobId: string;
  consistencyToken: string;
  templateIds: string[];
  duplicates: { subjectId: string; score: number; accepted: boolean }[];
}

export function enrol(client: grpc.Client, subjectId: string, vectors: Float32Array[], extra: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<EnrolReply> {
  return rawUnary(client, 'Enrol', { subjectId, probes: vectors.map((v) => ({ vector: { values: Array.from(v) } })), ...extra }, { deadline: Date.now() + timeoutMs });
}

export function removeSubject(client: grpc.Client, subjectId: string, wait = true, timeoutMs = 20_000): Promise<{ jobId: string; consistencyToken: string }> {
  return rawUnary(client, 'Remove', { subjectId, wait }, { deadline: Date.now() + timeoutMs });
}

/** Polls GetJob until the job completes; returns its status (throws if it failed). */
export async function jobDone(client: grpc.Client, jobId: string, timeoutMs = 60_000): Promise<{ consistencyToken: string; state: string }> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await rawUnary(client, 'GetJob', { jobId }, { deadline: Date.now() + 5000 });
    if (s.state === 'completed') return s;
    if (s.state === 'failed') throw new Error(`job ${jobId} failed: ${s.failedReason}`);
    if (Date.now() > until) throw new Error(`job ${jobId} still ${s.state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
