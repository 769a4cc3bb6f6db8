import { assertSubjectId, jumpHash, ownedSlots, SLOT_COUNT, slotOf } from '@yoco/gallery';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';

describe('slots', () => {
  it('slot = crc32(utf8) mod 1024, the documented hash', () => {
    // crc32("123456789") is the standard check value 0xCBF43926.
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(slotOf('123456789')).toBe(0xcbf43926 % 1024);
    expect(slotOf('émilie@site-2')).toBe(crc32(Buffer.from('émilie@site-2', 'utf8')) % 1024);
  });

  it('jump hash matches the published algorithm and moves the fewest slots', () => {
    // Values printed by the paper's C++ implementation (Lamping & Veach 2014), compiled with g++.
    expect(jumpHash(0, 1)).toBe(0);
    expect([1, 2, 3, 10, 100].map((b) => jumpHash(1, b))).toEqual([0, 0, 0, 6, 55]);
    expect([jumpHash(1023, 7), jumpHash(500, 1000), jumpHash(77, 3)]).toEqual([4, 753, 1]);
    for (const k of [1, 2, 3, 4, 8]) {
      const all = Array.from({ length: k }, (_, i) => ownedSlots(i, k));
      expect(all.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: SLOT_COUNT }, (_, i) => i));
      // Going from k to k+1 moves only slots that land on the new shard.
      for (let s = 0; s < SLOT_COUNT; s++) {
        const after = jumpHash(s, k + 1);
        if (after !== jumpHash(s, k)) expect(after).toBe(k);
      }
    }
  });

  it('subject ids: 1-128 chars of [A-Za-z0-9._:@-]', () => {
    for (const ok of ['a', 'emp-00042', 'j.doe@acme.com', 'site:7_x', 'x'.repeat(128)]) expect(() => assertSubjectId(ok)).not.toThrow();
    for (const bad of ['', 'x'.repeat(129), 'has space', 'slash/no', 'ümlaut', 'a,b', 42]) {
      expect(() => assertSubjectId(bad)).toThrow(expect.objectContaining({ code: 'SUBJECT_ID' }));
    }
  });
});
