import { crc32 } from 'node:zlib';
import { InvalidSubjectIdError } from './errors/index.js';

/** Fixed forever: changing it would move every subject. */
export const SLOT_COUNT = 1024;

const SUBJECT_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

export function assertSubjectId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !SUBJECT_ID.test(id)) throw new InvalidSubjectIdError(id);
}

/** A subject's slot: crc32 (IEEE, as zlib computes it) of the id's UTF-8 bytes, mod 1024. */
export function slotOf(subjectId: string): number {
  return crc32(Buffer.from(subjectId, 'utf8')) % SLOT_COUNT;
}

const MULT = 2862933555777941757n;
const MASK = (1n << 64n) - 1n;

/**
 * Lamping & Veach's jump consistent hash: maps key to [0, buckets) so that
 * going from k to k+1 buckets moves only 1/(k+1) of the keys.
 */
export function jumpHash(key: number, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer, got ${buckets}`);
  let k = BigInt(key) & MASK;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = (k * MULT + 1n) & MASK;
    j = Math.floor((b + 1) * (2 ** 31 / (Number(k >> 33n) + 1)));
  }
  return b;
}

/** The shard index (of `count`) that owns a slot. */
export function shardOfSlot(slot: number, count: number): number {
  return jumpHash(slot, count);
}

/** Every slot shard `index` of `count` owns, ascending. */
export function ownedSlots(index: number, count: number): number[] {
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new RangeError(`shard index ${index} is outside 0..${count - 1}`);
  const out: number[] = [];
  for (let s = 0; s < SLOT_COUNT; s++) if (jumpHash(s, count) === index) out.push(s);
  return out;
}
