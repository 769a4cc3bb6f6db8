import { sigmoid } from './head.js';

export interface Match {
  /** Row index, as returned by add(). */
  index: number;
  /** The head's probability that query and row show the same subject. */
  score: number;
  /** The head's output before the sigmoid; ranks exactly where probabilities saturate. */
  logit: number;
}

/**
 * The k largest logits among live rows, best first, ties broken by the lower
 * row index. A bounded min-heap: O(N log k). Once it holds k rows, a row is
 * first compared with the k-th best alone, in a loop of nothing else (most
 * rows stop there: it is the whole cost at 50000 rows).
 */
export function topK(logits: ArrayLike<number>, alive: Uint8Array, count: number, k: number): Match[] {
  const { idx, val, size } = heapTop(logits, alive, count, k);
  const out: Match[] = [];
  for (let i = 0; i < size; i++) out.push({ index: idx[i], score: sigmoid(val[i]), logit: val[i] });
  return out.sort((a, b) => b.logit - a.logit || a.index - b.index);
}

/** Candidates best first: ids[i] with its value values[i], for i below length. */
export interface Ranked {
  ids: Int32Array;
  values: Float64Array;
  length: number;
}

/**
 * The k largest of values[0..n), best first (a tie goes to the earlier
 * position), as typed arrays: each named by ids[position] (the position
 * itself without ids), only live ones with `alive`. What a search ranks its
 * candidates with: no object per candidate, no comparator.
 */
export function rankedOf(values: ArrayLike<number>, n: number, k: number, ids?: ArrayLike<number>, alive?: Uint8Array): Ranked {
  const { idx, val, size } = heapTop(values, alive, n, k);
  // Heapsort: the worst left goes to the last free place, so the arrays end up best first.
  for (let end = size - 1; end > 0; end--) {
    swap(idx, val, 0, end);
    siftDown(idx, val, end);
  }
  if (ids) for (let i = 0; i < size; i++) idx[i] = ids[idx[i]];
  return { ids: idx, values: val, length: size };
}

/** The k best (live) positions of values[0..count) as a min-heap (its root the worst of them); size is fewer when they are. */
function heapTop(values: ArrayLike<number>, alive: Uint8Array | undefined, count: number, k: number): { idx: Int32Array; val: Float64Array; size: number } {
  const idx = new Int32Array(k);
  const val = new Float64Array(k);
  let size = 0;
  let row = 0;
  for (; row < count && size < k; row++) {
    if (alive && alive[row] === 0) continue;
    idx[size] = row;
    val[size] = values[row];
    siftUp(idx, val, size++);
  }
  for (; row < count; row++) {
    // Rows arrive in index order, so an equal logit never displaces an earlier row; most stop at the first compare.
    if (!(values[row] > val[0]) || (alive && alive[row] === 0)) continue;
    idx[0] = row;
    val[0] = values[row];
    siftDown(idx, val, size);
  }
  return { idx, val, size };
}

/** Whether heap entry a is worse than b: a smaller logit, or an equal one at a later row. */
function worse(idx: Int32Array, val: Float64Array, a: number, b: number): boolean {
  return val[a] < val[b] || (val[a] === val[b] && idx[a] > idx[b]);
}

function swap(idx: Int32Array, val: Float64Array, a: number, b: number): void {
  const i = idx[a];
  idx[a] = idx[b];
  idx[b] = i;
  const v = val[a];
  val[a] = val[b];
  val[b] = v;
}

function siftUp(idx: Int32Array, val: Float64Array, i: number): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!worse(idx, val, i, p)) return;
    swap(idx, val, i, p);
    i = p;
  }
}

function siftDown(idx: Int32Array, val: Float64Array, size: number): void {
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < size && worse(idx, val, l, m)) m = l;
    if (r < size && worse(idx, val, r, m)) m = r;
    if (m === i) return;
    swap(idx, val, i, m);
    i = m;
  }
}

/** The k-th largest of n values (-Infinity when there are fewer than k): a typed sort, no comparator called per pair. */
export function kthLargest(values: Iterable<number>, n: number, k: number): number {
  if (n < k) return -Infinity;
  const sorted = new Float64Array(n);
  let i = 0;
  for (const v of values) sorted[i++] = v;
  sorted.sort();
  return sorted[n - k];
}
