import { loadProtos, makeClient, unary } from '@yoco/rpc';
import { readVectorFile } from '../vector-file.js';

export async function identify(address: string, vectorFile: string, topK: number, threshold: number, json: boolean): Promise<void> {
  const vector = await readVectorFile(vectorFile);
  const client = makeClient(loadProtos().Matcher, address);
  try {
    const res = await unary<object, any>(client, 'Identify', { probe: { vector: { values: Array.from(vector) } }, topK, threshold }, { deadline: Date.now() + 30_000 });
    if (json) {
      console.log(JSON.stringify(res, null, 2));
      return;
    }
    console.log(`searched ${res.gallerySize} templates${res.partial ? ` (PARTIAL: shards ${res.missingShards.join(', ')} missing)` : ''}; threshold ${res.threshold.toFixed(3)}`);
    res.matches.forEach((m: any, i: number) => {
      console.log(`${String(i + 1).padStart(3)}. ${m.accepted ? 'ACCEPT' : '      '} ${m.score.toFixed(4)}  ${m.subjectId}  (template ${m.templateId})`);
    });
    if (res.matches.length === 0) console.log('no matches: the gallery is empty');
  } finally {
    client.close();
  }
}
