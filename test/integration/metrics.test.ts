import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Rng } from '@yoco/common';
import { DEMO_PHOTOS } from '@yoco/cli';
import type { LocalCluster } from '@yoco/devkit';
import { unary } from '@yoco/rpc';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { dashboardExprs, metricNames } from '../support/deploy-files.js';
import { cleanUp, enrol, identify, startCluster, unitVector } from '../support/cluster.js';
import { testPrefix } from '../support/redis.js';

const prefix = testPrefix('metrics');
let cluster: LocalCluster | undefined;
afterAll(() => cleanUp(cluster, undefined, [prefix]));

/** A counter's value summed over its series (0 when absent). */
function total(text: string, name: string): number {
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
}

describe('metrics an SRE can page on', () => {
  it('every process serves /metrics that promtool accepts, and after traffic the counters that matter have moved', async () => {
    cluster = await startCluster(prefix, { shards: 2, replicas: 1, embedder: { profile: 'face-resnet128', env: { FACE_CROP: 'none' } }, env: { YOCO_DIM: '128', YOCO_HIDDEN: '256' } });
    const rng = new Rng(5);
    const client = cluster.matcherClient();
    const vectors = Array.from({ length: 20 }, () => unitVector(rng, 128));
    let token = '';
    for (const [i, v] of vectors.entries()) token = (await enrol(client, `m-${i}`, [v], { wait: true })).consistencyToken;
    for (const v of vectors) await identify(client, v, { consistencyToken: token });
    const photo = readFileSync(join(DEMO_PHOTOS, readdirSync(DEMO_PHOTOS).find((f) => /\.jpe?g$/i.test(f))!));
    await unary(client, 'Identify', { probe: { image: photo }, topK: 3 }, { deadline: Date.now() + 60_000 });
    await unary(client, 'Remove', { subjectId: 'm-0', wait: true }, { deadline: Date.now() + 20_000 });

    const names = ['coordinator', 'enroller', 'embedder', 'shard-0a', 'shard-1a'];
    const scraped: Record<string, string> = {};
    for (const name of names) {
      const port = cluster.metricsPorts.get(name);
      expect(port, `${name} said where its /metrics is`).toBeGreaterThan(0);
      scraped[name] = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const lint = spawnSync('promtool', ['check', 'metrics'], { input: scraped[name], encoding: 'utf8' });
      expect(lint.error, 'promtool (Debian package prometheus) is needed').toBeUndefined();
      expect(lint.status, `${name}: ${lint.stdout}${lint.stderr}`).toBe(0);
    }
    const c = scraped.coordinator;
    expect(total(c, 'yoco_rpc_requests_total')).toBeGreaterThanOrEqual(42);
    expect(c).toMatch(/yoco_rpc_requests_total\{[^}]*method="yoco\.v1\.Matcher\/Identify"[^}]*code="OK"/);
    expect(total(c, 'yoco_rpc_duration_seconds_count')).toBeGreaterThanOrEqual(42);
    for (const shard of ['0', '1']) expect(c).toMatch(new RegExp(`yoco_coordinator_shard_duration_seconds_count\\{[^}]*shard="${shard}"[^}]*\\} [1-9]`));
    // Present even when nothing happened yet: an alert must see 0, not a missing series.
    for (const name of ['yoco_coordinator_hedges_total', 'yoco_coordinator_hedges_won_total', 'yoco_coordinator_partial_answers_total', 'yoco_coordinator_fanout_shards']) expect(c).toContain(`# TYPE ${name}`);
    expect(total(scraped.enroller, 'yoco_enroller_jobs_total')).toBe(21);
    expect(scraped.enroller).toMatch(/yoco_enroller_queue_depth\{[^}]*state="failed"/);
    expect(total(scraped.embedder, 'yoco_embedder_images_total')).toBe(1);
    expect(total(scraped.embedder, 'yoco_embedder_batch_size_count')).toBe(1);
    for (const s of ['shard-0a', 'shard-1a']) {
      const t = scraped[s];
      expect(total(t, 'yoco_shard_search_batch_size_count')).toBeGreaterThanOrEqual(21);
      expect(total(t, 'yoco_shard_templates') + total(t, 'yoco_shard_subjects')).toBeGreaterThan(0);
      for (const name of ['yoco_shard_watermark_lag_seconds', 'yoco_shard_staleness_seconds', 'yoco_shard_compactions_total', 'yoco_shard_serving']) expect(t).toContain(`# TYPE ${name}`);
    }
    expect(total(scraped['shard-0a'], 'yoco_shard_templates') + total(scraped['shard-1a'], 'yoco_shard_templates')).toBe(19);
    // What the dashboard and the alerts read is what the services export.
    const exported = Object.values(scraped).join('\n');
    const read = metricNames([...dashboardExprs(), readFileSync(fileURLToPath(new URL('../../deploy/prometheus/alerts.yml', import.meta.url)), 'utf8')]);
    for (const name of read) expect(exported, name).toContain(`# TYPE ${name}`);
  });
});
