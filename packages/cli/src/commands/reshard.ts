import { readFile } from 'node:fs/promises';
import type { Matcher } from '@yoco/client';
import type { v1 } from '@yoco/rpc';
import { localCluster } from '../cluster-file.js';
import { matcherClient } from '../matcher-client.js';

export interface ReshardOptions {
  /** Return once the switch is done and the shards beyond the new k have stopped or say SURPLUS. */
  wait: boolean;
  abort: boolean;
  json: boolean;
  timeoutMs?: number;
}

/** One line per shard index of the change in progress: how far its best replica has got. */
export function progressLines(t: v1.Topology__Output): string[] {
  const next = t.next;
  if (!next) return [];
  return next.progress.map((p) => `  shard ${p.index}: ${p.ready ? 'ready' : `${p.slotsLoaded}/${p.slotsTotal} slots`}${p.address ? ` (${p.address})` : ' (no replica yet)'}`);
}

/** `yoco reshard --shards K [--wait] | --abort`: asks the Matcher (an admin call), which writes the next epoch. */
export async function reshard(address: string, shards: number, o: ReshardOptions): Promise<void> {
  const client = matcherClient(address);
  try {
    const res = await client.call('Reshard', { shardCount: shards, abort: o.abort }, { timeoutMs: 10_000 });
    const t = res.topology!;
    if (o.abort) {
      if (o.json) console.log(JSON.stringify(t, null, 2));
      else console.log(`aborted: epoch ${t.epoch} (k=${t.shardCount}) serves, untouched`);
      return;
    }
    const target = t.next!;
    if (!o.json) console.log(`epoch ${target.epoch}: k ${t.shardCount} -> ${target.shardCount}, from stream position ${target.fromPosition}; epoch ${t.epoch} serves until every shard index of it is ready`);
    await finish(client, address, t, o);
  } finally {
    client.close();
  }
}

/** `yoco rollout-head FILE [--wait]`: the head goes up with the call; the shards load it beside the serving one. */
export async function rolloutHead(address: string, file: string, o: ReshardOptions): Promise<void> {
  const headOnnx = await readFile(file);
  const client = matcherClient(address);
  try {
    const res = await client.call('RolloutHead', { headOnnx }, { timeoutMs: 60_000 });
    const t = res.topology!;
    if (!o.json) console.log(`epoch ${t.next!.epoch}: head ${t.headId || '(the first)'} -> ${t.next!.headId}; epoch ${t.epoch} serves until every shard index has the new head's rows`);
    await finish(client, address, t, o);
  } finally {
    client.close();
  }
}

/** Prints the change begun, or with --wait follows it to the switch (and the release of shards beyond k). */
async function finish(client: Matcher, address: string, t: v1.Topology__Output, o: ReshardOptions): Promise<void> {
  const target = t.next!;
  if (!o.wait) {
    if (o.json) console.log(JSON.stringify(t, null, 2));
    return;
  }
  const until = Date.now() + (o.timeoutMs ?? 30 * 60_000);
  let last = '';
  for (;;) {
    const s = await client.call('ClusterStatus', {}, { timeoutMs: 10_000 });
    const now = s.topology;
    if (now && now.epoch >= Number(target.epoch) && !now.next) {
      if (Number(now.epoch) !== Number(target.epoch) || now.shardCount !== target.shardCount) throw new Error(`the topology moved on to epoch ${now.epoch} (k=${now.shardCount}) meanwhile`);
      // Released: every replica beyond the new k is gone (`npm start` here stops them) or says SURPLUS (a StatefulSet to scale down).
      const local = localCluster()?.matcher === address;
      const left = s.shards.flatMap((sh) => sh.replicas.filter((r) => sh.index >= now.shardCount && (local || (r.state !== 'SURPLUS' && r.state !== 'UNREACHABLE'))));
      if (left.length === 0) {
        if (o.json) console.log(JSON.stringify(now, null, 2));
        else console.log(`switched to epoch ${now.epoch} (k=${now.shardCount}${now.headId ? `, head ${now.headId}` : ''}) after ${((Number(now.switchedAtMs) - Number(target.startedAtMs)) / 1000).toFixed(1)} s; shards beyond it released`);
        return;
      }
    } else if (now && !now.next && Number(now.epoch) < Number(target.epoch)) {
      throw new Error(`the change to epoch ${target.epoch} was aborted`);
    }
    const lines = now ? progressLines(now).join('\n') : '';
    if (!o.json && lines && lines !== last) console.log(lines);
    last = lines;
    if (Date.now() > until) throw new Error(`epoch ${target.epoch} not switched after ${(o.timeoutMs ?? 1_800_000) / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
