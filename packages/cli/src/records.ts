import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { getErrorMessage } from '@yoco/common';

/** One subject read from bulk input, and where it came from (file:line, the file, or the folder). */
export interface BulkRecord {
  where: string;
  subjectId: string;
  vectors: Float32Array[];
  /** Image files to be embedded by the cluster (paths only: read when sent, so memory stays bounded). */
  images: string[];
  replace: boolean;
}

/** What a folder of photos may hold: the formats the embedder decodes. */
export const IMAGE_FILE = /\.(jpe?g|png|webp)$/i;

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
  image?: unknown;
  images?: unknown;
  replace?: unknown;
}

/** `base`: the folder image paths are relative to (the JSON Lines file's own). */
async function toRecord(rec: Line, where: string, fallbackId: string, base: string): Promise<BulkRecord> {
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new Error('not a JSON object');
  const subjectId = rec.subject_id ?? rec.subjectId ?? fallbackId;
  if (typeof subjectId !== 'string' || !subjectId) throw new Error('no subject_id');
  const raw = rec.vectors ?? (rec.vector !== undefined ? [rec.vector] : []);
  const rawImages = rec.images ?? (rec.image !== undefined ? [rec.image] : []);
  if (!Array.isArray(raw) || !Array.isArray(rawImages)) throw new Error('"vectors" and "images" must be arrays');
  if (raw.length === 0 && rawImages.length === 0) throw new Error('no vector or image (set "vector", "vectors", "image" or "images")');
  const vectors = raw.map((v, i) => {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) throw new Error(`vector ${i} is not an array of numbers`);
    return Float32Array.from(v);
  });
  const images: string[] = [];
  for (const [i, name] of rawImages.entries()) {
    if (typeof name !== 'string' || !name) throw new Error(`image ${i} is not a file path`);
    const file = resolve(base, name);
    // Checked while reading, so a missing photo is reported with its line, not as a failed call later.
    if (!(await stat(file).catch(() => undefined))?.isFile()) throw new Error(`image ${i} '${name}' is not a file (${file})`);
    images.push(file);
  }
  return { where, subjectId, vectors, images, replace: rec.replace === true };
}

/** A folder of photos, one subject: named after the folder. */
async function folderRecord(folder: string): Promise<BulkRecord> {
  const images = (await readdir(folder)).filter((n) => IMAGE_FILE.test(n)).sort().map((n) => join(folder, n));
  if (images.length === 0) throw new Error('no images in the folder (.jpg, .jpeg, .png, .webp)');
  return { where: folder, subjectId: basename(folder), vectors: [], images, replace: false };
}

/**
 * The one bulk reader of `enrol --bulk` and `import`: JSON Lines
 * ({"subject_id", "vector" | "vectors" | "image" | "images", "replace"?} per
 * line; image paths relative to the file) or a directory holding *.json files
 * (one subject each, named after the file unless it says otherwise) and/or a
 * folder of photos per subject (named after the folder). Streamed: a line, a
 * file or a folder at a time, never the whole input, and images are only
 * named here. A malformed line, file or folder is skipped and handed to
 * `onRejected` with where it is; the rest goes on.
 */
export async function* readBulk(path: string, onRejected: (r: Rejected) => void): AsyncGenerator<BulkRecord> {
  if ((await stat(path)).isDirectory()) {
    for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const file = join(path, entry.name);
      if (entry.isDirectory()) {
        let record: BulkRecord;
        try {
          record = await folderRecord(file);
        } catch (err) {
          onRejected({ where: file, reason: getErrorMessage(err) });
          continue;
        }
        yield record;
        continue;
      }
      if (extname(entry.name) !== '.json') continue;
      let text = '';
      let record: BulkRecord;
      try {
        text = await readFile(file, 'utf8');
        record = await toRecord(JSON.parse(text) as Line, file, basename(entry.name, '.json'), path);
      } catch (err) {
        onRejected({ where: file, reason: getErrorMessage(err), raw: text.slice(0, 200) });
        continue;
      }
      yield record;
    }
    return;
  }
  const base = dirname(resolve(path));
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
    n++;
    if (!line.trim()) continue;
    let record: BulkRecord;
    try {
      record = await toRecord(JSON.parse(line) as Line, `${path}:${n}`, '', base);
    } catch (err) {
      onRejected({ where: `${path}:${n}`, reason: getErrorMessage(err), raw: line.slice(0, 200) });
      continue;
    }
    yield record;
  }
}

/** Records in the input (lines with content, or .json files and folders), counted by streaming it: the progress bar's total. */
export async function countBulk(path: string): Promise<number> {
  if ((await stat(path)).isDirectory()) return (await readdir(path, { withFileTypes: true })).filter((e) => e.isDirectory() || extname(e.name) === '.json').length;
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

  /** For --json: the count, the first 20 (where and why), and where all of them are. */
  toJSON(failuresFile?: string): { failed: number; failures: Rejected[]; failuresFile?: string } {
    return { failed: this.count, failures: this.shown.map(({ where, reason }) => ({ where, reason })), failuresFile };
  }

  print(failuresFile?: string): void {
    for (const r of this.shown) console.log(`  ${r.where}: ${r.reason}`);
    if (this.count > this.shown.length) console.log(`  ... and ${this.count - this.shown.length} more${failuresFile ? ` (all in ${failuresFile})` : ' (--failures FILE keeps them all)'}`);
  }
}
