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
  const idx = new Int32Array(k);
  const val = new Float64Array(k);
  let size = 0;
  let row = 0;
  for (; row < count && size < k; row++) {
    if (alive[row] === 0) continue;
    idx[size] = row;
    val[size] = logits[row];
    siftUp(idx, val, size++);
  }
  for (; row < count; row++) {
    // Rows arrive in index order, so an equal logit never displaces an earlier row.
    if (!(logits[row] > val[0]) || alive[row] === 0) continue;
    idx[0] = row;
    val[0] = logits[row];
    siftDown(idx, val, size);
  }
  const out: Match[] = [];
  for (let i = 0; i < size; i++) out.push({ index: idx[i], score: sigmoid(val[i]), logit: val[i] });
  return out.sort((a, b) => b.logit - a.logit || a.index - b.index);
}

/** topK over values[0..n) that stand for ids[0..n) (a tie goes to the earlier in ids): the matches name the ids. */
export function topKOf(values: Float64Array, ids: ArrayLike<number>, n: number, k: number): Match[] {
  return topK(values, new Uint8Array(n).fill(1), n, k).map((m) => ({ ...m, index: ids[m.index] }));
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
