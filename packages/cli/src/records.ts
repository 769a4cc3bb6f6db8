import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { EnrolRecord } from './bulk-enrol.js';
import { getErrorMessage } from '@yoco/common';

interface Line {
  subject_id?: string;
  subjectId?: string;
  vector?: number[];
  vectors?: number[][];
}

function toRecord(rec: Line, fallbackId: string): EnrolRecord {
  const subjectId = rec.subject_id ?? rec.subjectId ?? fallbackId;
  const vectors = (rec.vectors ?? (rec.vector ? [rec.vector] : [])).map((v) => Float32Array.from(v));
  return { subjectId, vectors };
}

/**
 * Subjects to enrol from a JSON Lines file ({"subject_id", "vector" | "vectors"}
 * per line) or a directory of *.json files (one subject each, named after the file
 * unless it says otherwise). Returns the records and how many there are.
 */
export async function readRecords(path: string): Promise<EnrolRecord[]> {
  const out: EnrolRecord[] = [];
  if ((await stat(path)).isDirectory()) {
    for (const name of (await readdir(path)).sort()) {
      if (extname(name) !== '.json') continue;
      out.push(toRecord(JSON.parse(await readFile(join(path, name), 'utf8')) as Line, basename(name, '.json')));
    }
    return out;
  }
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(path) })) {
    n++;
    if (!line.trim()) continue;
    try {
      out.push(toRecord(JSON.parse(line) as Line, ''));
    } catch (err) {
      throw new Error(`${path}:${n}: ${getErrorMessage(err)}`);
    }
  }
  return out;
}
