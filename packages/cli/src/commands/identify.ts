import { readFile } from 'node:fs/promises';
import { matcherClient } from '../matcher-client.js';
import { readVectorFile } from '../vector-file.js';

export interface ProbeSource {
  image?: string;
  vectorFile?: string;
}

/** A probe from an image file or a vector file. */
export async function probeOf(source: ProbeSource): Promise<{ image: Buffer } | { vector: { f32le: Buffer } }> {
  if (source.image) return { image: await readFile(source.image) };
  const v = await readVectorFile(source.vectorFile!);
  return { vector: { f32le: Buffer.from(v.buffer, v.byteOffset, v.byteLength) } };
}

export interface IdentifyOptions {
  topK: number;
  threshold: number;
  allowPartial: boolean;
  consistencyToken: string;
  json: boolean;
}

/** `yoco identify (IMAGE | --vector-file F)`. */
export async function identify(address: string, source: ProbeSource, o: IdentifyOptions): Promise<void> {
  const probe = await probeOf(source);
  const client = matcherClient(address);
  try {
    const res = await client.call('Identify', { probe, topK: o.topK, threshold: o.threshold, allowPartial: o.allowPartial, consistencyToken: o.consistencyToken }, { timeoutMs: 30_000 });
    if (o.json) {
      console.log(JSON.stringify(res, null, 2));
      return;
    }
    console.log(`searched ${res.gallerySize} templates${res.partial ? ` (PARTIAL: shards ${res.missingShards.join(', ')} missing)` : ''}; threshold ${res.threshold.toFixed(3)}`);
    res.matches.forEach((m, i) => {
      console.log(`${String(i + 1).padStart(3)}. ${m.accepted ? 'ACCEPT' : '      '} ${m.score.toFixed(4)}  ${m.subjectId}  (template ${m.templateId})`);
    });
    if (res.matches.length === 0) console.log('no matches: the gallery is empty');
  } finally {
    client.close();
  }
}

/** `yoco verify SUBJECT (IMAGE | --image F | --vector-file F)`: 1:1; exit code 0 on a match, 1 otherwise. */
export async function verify(address: string, subjectId: string, source: ProbeSource, o: Pick<IdentifyOptions, 'threshold' | 'consistencyToken' | 'json'>): Promise<boolean> {
  const probe = await probeOf(source);
  const client = matcherClient(address);
  try {
    const res = await client.call('Verify', { subjectId, probe, threshold: o.threshold, consistencyToken: o.consistencyToken }, { timeoutMs: 30_000 });
    if (o.json) console.log(JSON.stringify(res, null, 2));
    else console.log(`${res.match ? 'MATCH' : 'NO MATCH'}: ${subjectId} scores ${res.score.toFixed(4)} (threshold ${res.threshold.toFixed(3)}, template ${res.templateId})`);
    return res.match;
  } finally {
    client.close();
  }
}

/** `yoco subject SUBJECT`: its template ids, slot and shard (never vectors). */
export async function subject(address: string, subjectId: string, json: boolean): Promise<void> {
  const client = matcherClient(address);
  try {
    const res = await client.call('GetSubject', { subjectId }, { timeoutMs: 10_000 });
    if (json) console.log(JSON.stringify(res, null, 2));
    else console.log(`${res.subjectId}: ${res.templateIds.length} templates (${res.templateIds.join(', ')}); slot ${res.slot}, shard ${res.shard}`);
  } finally {
    client.close();
  }
}
