import type { ScanBlocks } from './int8-mirror.js';

/**
 * Floors under the bounds (logits[r] + rowSlack[r]) of int8 logits, read off
 * the scan's block maxima (each block's largest bound): floor(m) is the m-th
 * largest of them, so at least m rows (one per block) have a bound that
 * reaches it. A search looks at the rows reaching a floor instead of at
 * every row; only the blocks that hold one are read (their largest bound
 * reaches it). null where the blocks are too few for this to save anything.
 */
export class BoundFloors {
  private constructor(private readonly blocks: ScanBlocks, private readonly nBlocks: number) {}

  static of(blocks: ScanBlocks | undefined, count: number, want: number): BoundFloors | null {
    const nBlocks = Math.ceil(count / (blocks?.rows ?? 1));
    return blocks && nBlocks >= 8 * want ? new BoundFloors(blocks, nBlocks) : null;
  }

  /** The m-th largest block maximum (-Infinity past the last block). */
  floor(m: number): number {
    return m <= this.nBlocks ? mthLargest(this.blocks.max, this.nBlocks, m) : -Infinity;
  }

  /** The live rows whose bound reaches floor, in row order, into `into` (grown when short); how many there are. */
  rowsReaching(logits: Float64Array, rowSlack: Float32Array, alive: Uint8Array, count: number, floor: number, into: { rows: Int32Array }): number {
    const { rows: per, max } = this.blocks;
    const nBlocks = this.nBlocks;
    // The blocks first: then room for all their rows at once, and a row loop with no checks but its own.
    if (passingScratch.length < nBlocks) passingScratch = new Int32Array(Math.max(nBlocks, 2 * passingScratch.length));
    const passing = passingScratch;
    let nPassing = 0;
    for (let b = 0; b < nBlocks; b++) if (max[b] >= floor) passing[nPassing++] = b;
    if (into.rows.length < nPassing * per) into.rows = new Int32Array(Math.max(nPassing * per, into.rows.length * 2));
    const rows = into.rows;
    // The passing blocks' lines first, loads nothing waits on: the row loop's compares and branches kept few
    // misses in flight, and its lines came in one at a time (0.05 ms for 160 blocks, 0.013 with them cached).
    let touch = 0;
    for (let p = 0; p < nPassing; p++) {
      const r = passing[p] * per;
      touch += logits[r] + logits[Math.min(r + 8, count - 1)] + rowSlack[r] + alive[r];
    }
    touched = touch;
    let n = 0;
    for (let p = 0; p < nPassing; p++) {
      const b = passing[p];
      const end = Math.min(count, (b + 1) * per);
      for (let r = b * per; r < end; r++) if (logits[r] + rowSlack[r] >= floor && alive[r] !== 0) rows[n++] = r;
    }
    return n;
  }
}

/** Where rowsReaching's touches go, so they are not dropped as dead. */
let touched = 0;

/** The blocks rowsReaching passes (it runs synchronously, one call at a time; kept from call to call). */
let passingScratch = new Int32Array(0);

/** Buckets of the first pass of mthLargest. */
const BUCKETS = 1024;
/** mthLargest's bucket counts (it runs synchronously, one call at a time). */
const COUNTS = new Int32Array(BUCKETS);

/**
 * The m-th largest of values[0..n) (m <= n), exactly: the values counted in
 * BUCKETS buckets over their range, then only the bucket holding the m-th
 * sorted (two passes over the values, where a heap of m did up to m log m
 * work more).
 */
function mthLargest(values: Float64Array, n: number, m: number): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(hi > lo)) return hi;
  if (!Number.isFinite(hi - lo)) return mthLargestByHeap(values, n, m);
  // Bucket of v: min(BUCKETS - 1, floor((v - lo) * scale)), written out in both loops (a closure here cost 2x).
  const scale = BUCKETS / (hi - lo);
  const counts = COUNTS.fill(0);
  for (let i = 0; i < n; i++) counts[Math.min(BUCKETS - 1, ((values[i] - lo) * scale) | 0)]++;
  let above = 0;
  let b = BUCKETS - 1;
  while (above + counts[b] < m) above += counts[b--];
  const inBucket = new Float64Array(counts[b]);
  let k = 0;
  for (let i = 0; i < n; i++) if (Math.min(BUCKETS - 1, ((values[i] - lo) * scale) | 0) === b) inBucket[k++] = values[i];
  inBucket.sort();
  return inBucket[inBucket.length - (m - above)];
}

/** mthLargest where the range is not finite: a min-heap of the m largest so far. */
function mthLargestByHeap(values: Float64Array, n: number, m: number): number {
  const heap = values.slice(0, m);
  for (let i = (m >> 1) - 1; i >= 0; i--) siftDown(heap, i, m);
  for (let i = m; i < n; i++) {
    if (!(values[i] > heap[0])) continue;
    heap[0] = values[i];
    siftDown(heap, 0, m);
  }
  return heap[0];
}

function siftDown(heap: Float64Array, i: number, size: number): void {
  for (;;) {
    const l = 2 * i + 1;
    let m = i;
    if (l < size && heap[l] < heap[m]) m = l;
    if (l + 1 < size && heap[l + 1] < heap[m]) m = l + 1;
    if (m === i) return;
    const t = heap[i];
    heap[i] = heap[m];
    heap[m] = t;
    i = m;
  }
}
