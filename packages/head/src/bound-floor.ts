import type { ScanBlocks } from './int8-mirror.js';

/**
 * Floors under the bounds (logits[r] + rowSlack[r]) of int8 logits, read off
 * the scan's block maxima: floor(m) is the m-th largest of them, so at least
 * m rows (one per block) have a logit, and so a bound, that reaches it. A
 * search looks at the rows reaching a floor instead of at every row; only
 * the blocks that can hold one are read (their largest logit plus their
 * largest rowSlack reaches it). null where the blocks are too few for this to
 * save anything.
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
    const { rows: per, max, slack } = this.blocks;
    let n = 0;
    for (let b = 0; b < this.nBlocks; b++) {
      if (max[b] + slack[b] < floor) continue;
      const end = Math.min(count, (b + 1) * per);
      for (let r = b * per; r < end; r++) {
        if (logits[r] + rowSlack[r] < floor || alive[r] === 0) continue;
        if (n === into.rows.length) {
          const next = new Int32Array(into.rows.length * 2 + 64);
          next.set(into.rows);
          into.rows = next;
        }
        into.rows[n++] = r;
      }
    }
    return n;
  }
}

/** The m-th largest of values[0..n) (m <= n): a min-heap of the m largest so far, one compare for most values. */
function mthLargest(values: Float64Array, n: number, m: number): number {
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
