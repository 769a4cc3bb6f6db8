import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { getErrorMessage } from '@yoco/common';

/** One subject read from bulk input, and where it came from (file:line, or the file). */
export interface BulkRecord {
  where: string;
  subjectId: string;
  vectors: Float32Array[];
  replace: boolean;
}

/** A record that could not be read: where, why, and the raw text (cut at 200 characters). */
export interface Rejected {
  where: string;
  reason: string;
  raw?: string;
}

interface Line {
  subject_id?: unknown;
  subjectId?: unknown;
  vector?: unknown;
  vectors?: unknown;
  replace?: unknown;
}

function toRecord(rec: Line, where: string, fallbackId: string): BulkRecord {
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new Error('not a JSON object');
  const subjectId = rec.subject_id ?? rec.subjectId ?? fallbackId;
  if (typeof subjectId !== 'string' || !subjectId) throw new Error('no subject_id');
  const raw = rec.vectors ?? (rec.vector !== undefined ? [rec.vector] : []);
  if (!Array.isArray(raw) || raw.length === 0) throw new Error('no vector (set "vector" or "vectors")');
  const vectors = raw.map((v, i) => {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) throw new Error(`vector ${i} is not an array of numbers`);
    return Float32Array.from(v);
  });
  return { where, subjectId, vectors, replace: rec.replace === true };
}

/**
 * The one bulk reader of `enrol --bulk` and `import`: JSON Lines
 * ({"subject_id", "vector" | "vectors", "replace"?} per line) or a directory
 * of *.json files (one subject each, named after the file unless it says
 * otherwise). Streamed: a line (or a file) at a time, never the whole input.
 * A malformed line or file is skipped and handed to `onRejected` with its
 * file and line; the rest goes on.
 */
export async function* readBulk(path: string, onRejected: (r: Rejected) => void): AsyncGenerator<BulkRecord> {
  if ((await stat(path)).isDirectory()) {
    for (const name of (await readdir(path)).sort()) {
      if (extname(name) !== '.json') continue;
      const file = join(path, name);
      let text = '';
      try {
        text = await readFile(file, 'utf8');
        yield toRecord(JSON.parse(text) as Line, file, basename(name, '.json'));
      } catch (err) {
        onRejected({ where: file, reason: getErrorMessage(err), raw: text.slice(0, 200) });
      }
    }
    return;
  }
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
    n++;
    if (!line.trim()) continue;
    let record: BulkRecord;
    try {
      record = toRecord(JSON.parse(line) as Line, `${path}:${n}`, '');
    } catch (err) {
      onRejected({ where: `${path}:${n}`, reason: getErrorMessage(err), raw: line.slice(0, 200) });
      continue;
    }
    yield record;
  }
}

/** Records in the input (lines with content, or .json files), counted by streaming it: the progress bar's total. */
export async function countBulk(path: string): Promise<number> {
  if ((await stat(path)).isDirectory()) return (await readdir(path)).filter((n) => extname(n) === '.json').length;
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) if (line.trim()) n++;
  return n;
}

/**
 * Where rejected records go: every one to `--failures FILE` (JSON Lines:
 * where, reason, raw) when given, and the first 20 to the terminal.
 */
export class RejectionLog {
  private readonly file: WriteStream | undefined;
  private readonly shown: Rejected[] = [];
  count = 0;

  constructor(path?: string) {
    this.file = path ? createWriteStream(path) : undefined;
  }

  add = (r: Rejected): void => {
    this.count++;
    if (this.shown.length < 20) this.shown.push(r);
    this.file?.write(`${JSON.stringify(r)}\n`);
  };

  async close(): Promise<void> {
    if (this.file) await new Promise<void>((resolve) => this.file!.end(resolve));
  }

  print(failuresFile?: string): void {
    for (const r of this.shown) console.log(`  ${r.where}: ${r.reason}`);
    if (this.count > this.shown.length) console.log(`  ... and ${this.count - this.shown.length} more${failuresFile ? ` (all in ${failuresFile})` : ' (--failures FILE keeps them all)'}`);
  }
}
