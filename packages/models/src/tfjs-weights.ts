import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface NamedWeight {
  shape: number[];
  data: Float32Array;
}

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: 'uint8' | 'uint16' | 'float16'; scale?: number; min?: number };
}

/**
 * Reads a TensorFlow.js weights manifest and its binary shards into float32
 * arrays, undoing uint8/uint16 affine quantization (value = q * scale + min),
 * as tf.io.decodeWeights does.
 */
export async function readTfjsWeights(manifestPath: string): Promise<Map<string, NamedWeight>> {
  const groups = JSON.parse(await readFile(manifestPath, 'utf8')) as { paths: string[]; weights: ManifestEntry[] }[];
  const out = new Map<string, NamedWeight>();
  for (const group of groups) {
    const shards = await Promise.all(group.paths.map((p) => readFile(join(dirname(manifestPath), p))));
    const bytes = Buffer.concat(shards);
    let offset = 0;
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      const q = w.quantization;
      if (!q) {
        if (w.dtype !== 'float32') throw new Error(`${w.name}: unsupported dtype ${w.dtype}`);
        for (let i = 0; i < n; i++) data[i] = bytes.readFloatLE(offset + i * 4);
        offset += n * 4;
      } else if (q.dtype === 'uint8' || q.dtype === 'uint16') {
        const size = q.dtype === 'uint8' ? 1 : 2;
        const scale = q.scale ?? 1;
        const min = q.min ?? 0;
        for (let i = 0; i < n; i++) {
          const v = size === 1 ? bytes.readUInt8(offset + i) : bytes.readUInt16LE(offset + i * 2);
          data[i] = v * scale + min;
        }
        offset += n * size;
      } else {
        throw new Error(`${w.name}: unsupported quantization ${q.dtype}`);
      }
      out.set(w.name, { shape: w.shape, data });
    }
    if (offset !== bytes.length) throw new Error(`${manifestPath}: read ${offset} of ${bytes.length} bytes`);
  }
  return out;
}
