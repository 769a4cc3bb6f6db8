import { readFile } from 'node:fs/promises';
import type { v1 } from '@yoco/rpc';
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
    if (res.face) console.log(faceLine(res.face));
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

/** The face an image probe's vector came from, in one line. */
export function faceLine(face: v1.Face__Output): string {
  const b = face.box;
  const q = face.quality;
  const where = b ? `${Math.round(b.width)} x ${Math.round(b.height)} px at (${Math.round(b.x)}, ${Math.round(b.y)})` : 'no box';
  const measures = q ? `; ${q.eyeDistancePx.toFixed(0)} px between the eyes, sharpness ${q.sharpness.toFixed(0)}, yaw ${q.yawDeg.toFixed(0)} deg` : '';
  return `face: ${where}, score ${face.score.toFixed(2)}${face.facesFound > 1 ? ` (one of ${face.facesFound} found, by FACE_SELECT)` : ''}${measures}`;
}
