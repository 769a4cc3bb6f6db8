import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { BackupFileError } from './errors/index.js';

/**
 * The file `yoco backup` writes:
 *
 *   "YOCOBAK1\n"
 *   records: u8 kind (1 data, 2 config, 3 gone) | u16 name length | name (the key without its prefix)
 *            | f64 remaining ttl in ms (-1: none) | u32 length | DUMP payload
 *   header JSON | u32 header length | sha256 of everything before it (32 bytes)
 *
 * The header comes last because it is known last (a key may expire while the
 * backup runs); a reader finds it from the end and checks the whole file
 * against the hash before it uses any of it.
 */
export const BACKUP_MAGIC = Buffer.from('YOCOBAK1\n');

/**
 * data: replaced wholesale by a restore. config: the topology, heads, audit,
 * meta: a restore keeps the target's own when it has one. A later record of
 * a key replaces an earlier one; gone: the key was deleted before the cut.
 */
export type BackupKeyKind = 'data' | 'config' | 'gone';

const KIND_BYTE: Record<BackupKeyKind, number> = { data: 1, config: 2, gone: 3 };

export interface BackupHeader {
  format: 1;
  /** The prefix backed up (a restore may target another). */
  prefix: string;
  /** Redis' clock when the fence was taken: the recovery point. */
  createdAtMs: number;
  redisVersion: string;
  /** The change stream's last id and the removal log's at the cut. */
  streamLastId: string;
  removalsLastId: string;
  /** The queue's job id counter at the cut: a restore keeps job ids (and write sequences) above it. */
  jobSeq: number;
  dim: number;
  headId: string;
  /** Distinct keys the backup holds at its cut. */
  keys: number;
  subjects: number;
  templates: number;
  /** Keys DUMPed again under the fence (written during the first pass); -1 when everything was (the stream was trimmed past the delta). */
  redumped: number;
}

export interface BackupRecord {
  kind: BackupKeyKind;
  name: string;
  pttl: number;
  dump: Buffer;
}

/** Writes a backup file record by record, hashing as it goes; commit() seals it with the header. */
export class BackupWriter {
  private readonly hash: Hash = createHash('sha256');
  private position = 0;

  private constructor(private readonly fh: FileHandle) {}

  static async create(path: string): Promise<BackupWriter> {
    const w = new BackupWriter(await open(path, 'wx'));
    await w.write(BACKUP_MAGIC);
    return w;
  }

  async add(record: BackupRecord): Promise<void> {
    const name = Buffer.from(record.name, 'utf8');
    const head = Buffer.alloc(1 + 2 + name.length + 8 + 4);
    let at = head.writeUInt8(KIND_BYTE[record.kind], 0);
    at = head.writeUInt16LE(name.length, at);
    at += name.copy(head, at);
    at = head.writeDoubleLE(record.pttl, at);
    head.writeUInt32LE(record.dump.length, at);
    await this.write(head);
    await this.write(record.dump);
  }

  async commit(header: BackupHeader): Promise<void> {
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length, 0);
    await this.write(json);
    await this.write(len);
    await this.flush();
    await this.fh.write(this.hash.digest(), 0, 32, this.position);
    await this.fh.sync();
    await this.fh.close();
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }

  /** Records are gathered and written a megabyte at a time: a backup holds the fence while it writes. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private async write(buf: Buffer): Promise<void> {
    this.hash.update(buf);
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    if (this.pendingBytes >= 1 << 20) await this.flush();
  }

  private async flush(): Promise<void> {
    const all = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.fh.write(all, 0, all.length, this.position);
    this.position += all.length;
  }
}

/** Buffered sequential reads of one file. */
class Reader {
  private buf = Buffer.alloc(0);
  private pos: number;

  constructor(private readonly fh: FileHandle, start: number, private readonly end: number) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos + this.buf.length;
  }

  async take(n: number, what: string): Promise<Buffer> {
    if (n > this.remaining) throw new BackupFileError(`truncated: ${what} needs ${n} bytes, ${this.remaining} are left`);
    while (this.buf.length < n) {
      const want = Math.min(Math.max(n - this.buf.length, 1 << 20), this.end - this.pos);
      const chunk = Buffer.alloc(want);
      const { bytesRead } = await this.fh.read(chunk, 0, want, this.pos);
      if (bytesRead === 0) throw new BackupFileError(`truncated while reading ${what}`);
      this.pos += bytesRead;
      this.buf = this.buf.length === 0 ? chunk.subarray(0, bytesRead) : Buffer.concat([this.buf, chunk.subarray(0, bytesRead)]);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

/**
 * Checks a backup file whole (magic, hash, header) and returns its header; a
 * file that fails any check is refused before a byte of it is used.
 */
export async function verifyBackup(path: string): Promise<BackupHeader> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size < BACKUP_MAGIC.length + 36) throw new BackupFileError(`${path} is ${size} bytes: not a YOCO backup`);
    const magic = Buffer.alloc(BACKUP_MAGIC.length);
    await fh.read(magic, 0, magic.length, 0);
    if (!magic.equals(BACKUP_MAGIC)) throw new BackupFileError(`${path} is not a YOCO backup (no YOCOBAK1 mark)`);
    const tail = Buffer.alloc(36);
    await fh.read(tail, 0, 36, size - 36);
    const headerLen = tail.readUInt32LE(0);
    const hash = createHash('sha256');
    const reader = new Reader(fh, 0, size - 32);
    while (reader.remaining > 0) hash.update(await reader.take(Math.min(reader.remaining, 1 << 20), 'the body'));
    if (!hash.digest().equals(tail.subarray(4))) throw new BackupFileError(`${path} does not match its checksum: damaged or cut short; nothing was restored`);
    if (headerLen > size - 36 - BACKUP_MAGIC.length) throw new BackupFileError(`${path}: bad header length`);
    const json = Buffer.alloc(headerLen);
    await fh.read(json, 0, headerLen, size - 36 - headerLen);
    const header = JSON.parse(json.toString('utf8')) as BackupHeader;
    if (header.format !== 1) throw new BackupFileError(`${path} is backup format ${String(header.format)}; this version reads format 1`);
    return header;
  } finally {
    await fh.close();
  }
}

/** The records of a backup file verifyBackup() accepted, in order. */
export async function* backupRecords(path: string): AsyncGenerator<BackupRecord> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const tail = Buffer.alloc(36);
    await fh.read(tail, 0, 36, size - 36);
    const reader = new Reader(fh, BACKUP_MAGIC.length, size - 36 - tail.readUInt32LE(0));
    while (reader.remaining > 0) {
      const kindByte = (await reader.take(1, 'a record'))[0];
      const kind = (Object.keys(KIND_BYTE) as BackupKeyKind[]).find((k) => KIND_BYTE[k] === kindByte);
      if (!kind) throw new BackupFileError(`unknown record kind ${kindByte}`);
      const name = (await reader.take((await reader.take(2, 'a name length')).readUInt16LE(0), 'a key name')).toString('utf8');
      const pttl = (await reader.take(8, 'a ttl')).readDoubleLE(0);
      const dump = Buffer.from(await reader.take((await reader.take(4, 'a value length')).readUInt32LE(0), `the value of ${name}`));
      yield { kind, name, pttl, dump };
    }
  } finally {
    await fh.close();
  }
}
