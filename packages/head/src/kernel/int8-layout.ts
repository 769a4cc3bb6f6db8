/**
 * Where an int8 kernel keeps things in its memory, for rows of wb bytes
 * (the same for both kernels, and fixed by wb alone, so the modules compiled
 * per width can bake the addresses in):
 *   [r (int16) x INT8_MAX_QUERIES | v (int16) | t, base (f64) | scratch for
 *    one chunk of outputs | the chunk's block maxima | the chunk's rows'
 *    own bounds (f32) | rows ...]
 * The rows sit last so the store grows in place.
 *
 * Rows are stored in pairs, 16 bytes of the even row, then 16 of the odd
 * one, in turn: a single-query look at two rows (int8-loops.ts) then reads
 * one stream of bytes, where two rows side by side were two streams 512
 * bytes apart that the hardware prefetcher followed badly (the two-row scan
 * was 1.6x slower than one row at a time from memory, 18% faster in cache;
 * measured here).
 */

/** Queries one runMany pass serves; their r vectors sit side by side at the start of memory. */
export const INT8_MAX_QUERIES = 32;
/** Rows of a batch chunk: its outputs are INT8_MAX_QUERIES i32 per row. */
export const CHUNK = 32768;
/** A single-query scan writes one f64 logit per row into the same scratch: this many rows per chunk. */
export const SINGLE_CHUNK = (CHUNK * 4 * INT8_MAX_QUERIES) / 8;
/** Rows per block: a single-query scan also writes each block's largest bound (logit + the row's own slack), so a search can pass over blocks, not rows. */
export const BLOCK_ROWS = 16;

export interface Int8Layout {
  r: number;
  v: number;
  /** f64 t then f64 base: a single-query scan writes t * sum + base. */
  affine: number;
  out: number;
  blocks: number;
  /** Each row's own slack (f32), for one chunk of rows: the single-query scan adds it to the logit for its block maxima. */
  slack: number;
  rows: number;
}

export function int8Layout(wb: number): Int8Layout {
  const v = wb * 2 * INT8_MAX_QUERIES;
  const affine = v + wb * 2;
  const out = affine + 16;
  const blocks = out + CHUNK * 4 * INT8_MAX_QUERIES;
  const slack = blocks + (SINGLE_CHUNK / BLOCK_ROWS) * 8;
  return { r: 0, v, affine, out, blocks, slack, rows: slack + SINGLE_CHUNK * 4 };
}

/** Bytes of one row before the other row of its pair takes over. */
export const PAIR_CHUNK = 16;

/** Where row i starts, in bytes from the first row: its pair's start, plus PAIR_CHUNK for an odd row. */
export function rowStart(i: number, wb: number): number {
  return (i >> 1) * 2 * wb + (i & 1) * PAIR_CHUNK;
}

/** Where byte j of a row sits, in bytes from the row's start. */
export function byteOffset(j: number): number {
  return Math.floor(j / PAIR_CHUNK) * 2 * PAIR_CHUNK + (j % PAIR_CHUNK);
}
