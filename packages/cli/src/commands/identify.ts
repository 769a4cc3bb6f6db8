import { matcherClient } from '../matcher-client.js';
import { unary } from '@yoco/rpc';
import { readFile } from 'node:fs/promises';
import { readVectorFile } from '../vector-file.js';

/** Identifies an image file, or a vector file (--vector-file). */
export async function identify(address: string, source: { image?: string; vectorFile?: string }, topK: number, threshold: number, json: boolean): Promise<void> {
  const probe = source.image
    ? { image: await readFile(source.image) }
    : { vector: { values: Array.from(await readVectorFile(source.vectorFile!)) } };
  const client = matcherClient(address);
  try {
    const res = await unary(client, 'Identify', { probe, topK, threshold }, { deadline: Date.now() + 30_000 });
    if (json) {
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
