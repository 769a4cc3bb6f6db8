import { decodeVectors, f32FromBytes, f32leBytes, vectorFromWire } from '@yoco/common';
import { describe, expect, it } from 'vitest';

describe('the vector codec (little-endian float32, one form on every hop)', () => {
  it('encodes as a view of the same bytes and decodes to an equal copy, wherever the bytes sit', () => {
    const v = Float32Array.from([0.5, -1.25, 3e-7, 1e6, -0]);
    const bytes = f32leBytes(v);
    expect(bytes.buffer).toBe(v.buffer);
    expect([...bytes.subarray(0, 4)]).toEqual([0, 0, 0, 0x3f]); // 0.5, little-endian
    // At an odd offset (as inside a template record), where no Float32Array could view it.
    const framed = Buffer.concat([Buffer.from([9]), bytes]);
    const back = f32FromBytes(framed.subarray(1));
    expect(back).toEqual(v);
    expect(back.buffer).not.toBe(framed.buffer);
  });

  it('reads the bytes when a message carries them, the repeated floats (older callers) otherwise', () => {
    const v = Float32Array.from([1, 2, 3]);
    expect(vectorFromWire(f32leBytes(v), [9, 9, 9])).toEqual(v);
    expect(vectorFromWire(Buffer.alloc(0), [4, 5])).toEqual(Float32Array.from([4, 5]));
    expect(vectorFromWire(undefined, undefined)).toEqual(new Float32Array(0));
    expect(() => vectorFromWire(Buffer.alloc(7), [])).toThrow(/7\) are not whole float32 values/);
  });

  it('decodeVectors, the boundary form, checks what it decodes', () => {
    const two = f32leBytes(Float32Array.from([1, 0, 0, 1]));
    expect(decodeVectors(two, [], 2, 'query').count).toBe(2);
    expect(() => decodeVectors(two, [], 2, 'query', 1)).toThrow(/query has 4 values, expected 2/);
    expect(() => decodeVectors(f32leBytes(Float32Array.from([1, NaN])), [], 2)).toThrow(/non-finite value \(NaN\) at position 1/);
    expect(() => decodeVectors(undefined, [1, 2e7], 2)).toThrow(/position 1/);
  });
});
