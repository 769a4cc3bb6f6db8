import { localCluster } from '../cluster-file.js';
import { matcherClient } from '../matcher-client.js';
import { progressLines } from './reshard.js';

export async function status(address: string, json: boolean): Promise<void> {
  const client = matcherClient(address);
  try {
    const s = await client.call('ClusterStatus', {}, { timeoutMs: 10_000 });
    if (json) {
      console.log(JSON.stringify(s, null, 2));
      return;
    }
    const t = s.topology;
    console.log(`cluster at ${address}: k=${s.shardCount} epoch=${t?.epoch ?? 0} dim=${s.dim} head=${s.headId} model=${s.modelId} templates=${s.gallerySize} threshold=${s.defaultThreshold}`);
    const ts = s.thresholdSource;
    if (ts?.source && ts.source !== 'DEFAULT_THRESHOLD') {
      const warn = ts.headId && ts.headId !== s.headId ? `; WARNING: calibrated for head ${ts.headId}, serving ${s.headId}: calibrate again` : '';
      console.log(`  threshold ${Number(ts.threshold.toPrecision(6))}: calibrated ${ts.calibratedAt} for FPIR ${ts.fpir} at gallery size ${ts.gallerySize}${ts.extrapolated ? ' (extrapolated)' : ''} from ${ts.searches} searches (${ts.source})${warn}`);
    } else console.log(`  threshold ${s.defaultThreshold}: the DEFAULT_THRESHOLD setting, not calibrated (yoco calibrate)`);
    if (t?.switchedAtMs) console.log(`  epoch ${t.epoch} took over from epoch ${t.previousEpoch} (k=${t.previousShardCount}) at ${new Date(Number(t.switchedAtMs)).toISOString()}`);
    if (t?.next) {
      console.log(`  CHANGING to epoch ${t.next.epoch} (k=${t.next.shardCount}) since ${new Date(Number(t.next.startedAtMs)).toISOString()}; epoch ${t.epoch} serves until then:`);
      for (const line of progressLines(t)) console.log(line);
    }
    for (const shard of s.shards) {
      const times = shard.callP50Ms > 0 ? ` (calls p50 ${shard.callP50Ms.toFixed(2)} ms, of which Search ${shard.searchP50Ms.toFixed(2)} ms)` : '';
      console.log(`shard ${shard.index}: ${shard.healthy ? 'healthy' : 'UNHEALTHY'}${times}`);
      for (const r of shard.replicas) {
        const staleness = r.stalenessMs >= 0 ? ` staleness=${Math.round(r.stalenessMs)}ms` : '';
        const dead = r.deadRows > 0 ? ` dead=${r.deadRows}` : '';
        console.log(`  ${r.address.padEnd(22)} ${r.state.padEnd(13)} templates=${r.templates}${dead} subjects=${r.subjects} slots=${r.ownedSlots} watermark=${r.watermark}${staleness} p95=${r.p95Ms.toFixed(2)}ms ${r.engine}${r.kernel ? ` (${r.kernel}${r.bytesPerTemplate > 0 ? `, ${r.bytesPerTemplate} B/template` : ''})` : ''}`);
        if (r.excluded) console.log(`    not used: ${r.excluded}`);
      }
    }
    // The cluster `npm start` runs here: where each process's metrics are.
    const local = localCluster();
    if (local?.matcher === address) {
      console.log('metrics:');
      for (const p of local.processes) if (p.metrics) console.log(`  ${p.metrics}  (${p.name}, pid ${p.pid})`);
    }
  } finally {
    client.close();
  }
}
