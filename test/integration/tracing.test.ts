import { createServer, type Server } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_PHOTOS } from '@yoco/cli';
import type { LocalCluster } from '@yoco/devkit';
import { unary } from '@yoco/rpc';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanUp, startCluster } from '../support/cluster.js';
import { testPrefix } from '../support/redis.js';

const prefix = testPrefix('tracing');
let cluster: LocalCluster | undefined;
let collector: Server | undefined;
afterAll(async () => {
  await cleanUp(cluster, undefined, [prefix]);
  collector?.close();
});

interface Span {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
}

/** A minimal OTLP/HTTP collector: POST /v1/traces with JSON, spans kept as they come. */
async function startCollector(spans: Span[]): Promise<number> {
  collector = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const doc = JSON.parse(body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: Omit<Span, 'service'>[] }[] }[] };
      for (const rs of doc.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector!.listen(0, '127.0.0.1', r));
  return (collector!.address() as { port: number }).port;
}

describe('traces', () => {
  it('one Identify by image is one trace: the Matcher span, a client span per shard index with the shard span under it, and the embedder span', async () => {
    const spans: Span[] = [];
    const port = await startCollector(spans);
    cluster = await startCluster(prefix, {
      shards: 2,
      embedder: { profile: 'face-resnet128', env: { FACE_CROP: 'none' } },
      env: { YOCO_DIM: '128', YOCO_HIDDEN: '256', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_BSP_SCHEDULE_DELAY: '100' },
    });
    const photo = readFileSync(join(DEMO_PHOTOS, readdirSync(DEMO_PHOTOS).find((f) => /\.jpe?g$/i.test(f))!));
    await unary(cluster.matcherClient(), 'Identify', { probe: { image: photo }, topK: 3 }, { deadline: Date.now() + 60_000 });
    const identify = () => spans.find((s) => s.name === 'Matcher/Identify');
    for (let i = 0; i < 100 && !(identify() && spans.filter((s) => s.traceId === identify()!.traceId).length >= 6); i++) await new Promise((r) => setTimeout(r, 100));
    const root = identify()!;
    expect(root).toBeDefined();
    const trace = spans.filter((s) => s.traceId === root.traceId);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([root.traceId]));
    expect(root).toMatchObject({ service: 'yoco-coordinator', parentSpanId: '' });
    expect(trace.find((s) => s.name === 'Embedder/Embed')).toMatchObject({ service: 'yoco-embedder', parentSpanId: root.spanId });
    for (const i of [0, 1]) {
      const call = trace.find((s) => s.name === `shard ${i} Search`)!;
      expect(call).toMatchObject({ service: 'yoco-coordinator', parentSpanId: root.spanId });
      expect(trace.filter((s) => s.name === 'Shard/Search' && s.parentSpanId === call.spanId)).toHaveLength(1);
    }
    expect(trace.filter((s) => s.name === 'Shard/Search').every((s) => s.service === 'yoco-shard')).toBe(true);
  });
});
