import { readFile } from 'node:fs/promises';
import { f32FromBytes, InvalidArgumentError } from '@yoco/common';

/** A vector from a file: a JSON array of numbers, or raw little-endian float32 (.f32 / .bin). */
export async function readVectorFile(path: string): Promise<Float32Array> {
  const bytes = await readFile(path);
  if (/\.(f32|bin)$/i.test(path)) {
    return f32FromBytes(bytes, path);
  }
  const json = JSON.parse(bytes.toString('utf8')) as unknown;
  const values = Array.isArray(json) ? json : (json as { vector?: unknown; values?: unknown }).vector ?? (json as { values?: unknown }).values;
  if (!Array.isArray(values) || !values.every((v) => typeof v === 'number')) {
    throw new InvalidArgumentError(`${path}: expected a JSON array of numbers (or {"vector": [...]})`);
  }
  return Float32Array.from(values as number[]);
}
