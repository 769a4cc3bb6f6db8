import { matcherClient, matcherStub } from '../matcher-client.js';
import { bulkEnrol, waitForJobs } from '../bulk-enrol.js';
import { countBulk, readBulk, RejectionLog } from '../records.js';
import { faceLine, probeOf } from './identify.js';

export interface EnrolOptions {
  address: string;
  replace: boolean;
  wait: boolean;
}

/** One subject from image files (embedded by the cluster) and/or vector files. */
export async function enrolOne(subjectId: string, sources: { images: string[]; vectorFiles: string[] }, options: EnrolOptions & { json?: boolean }): Promise<void> {
  const probes = [...(await Promise.all(sources.images.map((image) => probeOf({ image })))), ...(await Promise.all(sources.vectorFiles.map((vectorFile) => probeOf({ vectorFile }))))];
  const client = matcherClient(options.address);
  try {
    const res = await client.call('Enrol', { subjectId, probes, replace: options.replace, wait: options.wait }, { timeoutMs: 60_000 });
    if (options.json) {
      console.log(JSON.stringify(res, null, 2));
      return;
    }
    console.log(`job ${res.jobId}: ${subjectId} with templates ${res.templateIds.join(', ')}${res.consistencyToken ? `; applied, token ${res.consistencyToken}` : ' (queued)'}`);
    for (const f of res.faces) if (f.box) console.log(`  ${faceLine(f)}`);
    for (const d of res.duplicates) console.log(`  warning: a probe is accepted as '${d.subjectId}' (score ${d.score.toFixed(3)}): the same person under another id?`);
  } finally {
    client.close();
  }
}

/** `yoco remove SUBJECT [--wait] [--verify]`; with --verify, returns whether the receipt shows nothing left. */
export async function removeOne(subjectId: string, options: EnrolOptions & { verify?: boolean; json?: boolean }): Promise<boolean> {
  const client = matcherClient(options.address);
  try {
    const res = await client.call('Remove', { subjectId, wait: options.wait || options.verify }, { timeoutMs: 60_000 });
    if (!options.json) console.log(`job ${res.jobId}: remove ${subjectId}${res.consistencyToken ? `; applied, token ${res.consistencyToken}` : ' (queued)'}`);
    if (!options.verify) {
      if (options.json) console.log(JSON.stringify(res, null, 2));
      return true;
    }
    const r = await client.call('VerifyRemoval', { subjectId, consistencyToken: res.consistencyToken }, { timeoutMs: 30_000 });
    if (options.json) {
      console.log(JSON.stringify({ ...res, receipt: r }, null, 2));
      return r.removed;
    }
    console.log(`receipt for ${subjectId} at or past ${res.consistencyToken}:`);
    for (const c of r.replicas) {
      console.log(`  shard ${c.shardIndex} replica ${c.address}: ${c.error ? `no answer (${c.error})` : c.found ? 'STILL HOLDS a template' : `holds none (watermark ${c.watermark})`}`);
    }
    console.log(`  store of record: ${r.storeTemplates} templates; queued jobs carrying its vectors: ${r.jobsWithVectors}`);
    console.log(`  append-only file: rewritten within ${r.aofRewriteBoundMs > 0 ? `${r.aofRewriteBoundMs / 1000} s of the removal` : '(never: AOF_REWRITE_AFTER_REMOVE_MS=0)'}`);
    console.log(r.removed ? `REMOVED: nothing of ${subjectId} is held` : `NOT REMOVED everywhere: see above`);
    return r.removed;
  } finally {
    client.close();
  }
}

/** Thousands of subjects from a JSON Lines file or a directory; returns the number that failed. */
export async function enrolBulk(path: string, options: EnrolOptions & { concurrency: number; failures?: string; json?: boolean }): Promise<number> {
  // Streamed: a malformed line or file is skipped (and reported) instead of stopping everything.
  const rejected = new RejectionLog(options.failures);
  const total = await countBulk(path);
  const client = matcherStub(options.address);
  try {
    const summary = await bulkEnrol(client, readBulk(path, rejected.add), total, options.concurrency);
    for (const f of summary.failed) rejected.add({ where: f.where ?? f.subjectId, reason: f.reason });
    const failedJobs = options.wait ? await waitForJobs(client, summary.jobs) : [];
    for (const f of failedJobs) rejected.add({ where: `${f.subjectId} (job ${f.jobId})`, reason: f.reason });
    if (options.json) console.log(JSON.stringify({ accepted: summary.accepted, unchanged: summary.unchanged, ...rejected.toJSON(options.failures), jobs: summary.jobs }, null, 2));
    else {
      console.log(`${summary.accepted} accepted, ${summary.unchanged} unchanged (skipped), ${rejected.count} failed`);
      rejected.print(options.failures);
    }
    return rejected.count;
  } finally {
    client.close();
    await rejected.close();
  }
}

export async function listFailedJobs(address: string, json: boolean): Promise<void> {
  const client = matcherClient(address);
  try {
    const res = await client.call('ListJobs', { state: 'failed', limit: 1000 }, { timeoutMs: 10_000 });
    if (json) {
      console.log(JSON.stringify(res, null, 2));
      return;
    }
    console.log(`${res.total} failed job(s)`);
    for (const j of res.jobs) console.log(`  job ${j.jobId} ${j.kind} ${j.subjectId} after ${j.attempts} attempt(s): ${j.failedReason}`);
  } finally {
    client.close();
  }
}
