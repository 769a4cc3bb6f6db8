import { loadProtos, makeClient, unary } from '@yoco/rpc';

export async function status(address: string, json: boolean): Promise<void> {
  const client = makeClient(loadProtos().Matcher, address);
  try {
    const s = await unary<object, any>(client, 'ClusterStatus', {}, { deadline: Date.now() + 10_000 });
    if (json) {
      console.log(JSON.stringify(s, null, 2));
      return;
    }
    console.log(`cluster at ${address}: k=${s.shardCount} epoch=${s.epoch} dim=${s.dim} head=${s.headId} model=${s.modelId} templates=${s.gallerySize} threshold=${s.defaultThreshold}`);
    for (const shard of s.shards) {
      const times = shard.callP50Ms > 0 ? ` (calls p50 ${shard.callP50Ms.toFixed(2)} ms, of which Search ${shard.searchP50Ms.toFixed(2)} ms)` : '';
      console.log(`shard ${shard.index}: ${shard.healthy ? 'healthy' : 'UNHEALTHY'}${times}`);
      for (const r of shard.replicas) {
        console.log(`  ${r.address.padEnd(22)} ${r.state.padEnd(11)} templates=${r.templates} subjects=${r.subjects} slots=${r.ownedSlots} watermark=${r.watermark} p95=${r.p95Ms.toFixed(2)}ms ${r.engine}`);
      }
    }
  } finally {
    client.close();
  }
}
