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
 * row index. A bounded min-heap: O(N log k), one compare per row in the
 * common case where a row does not beat the current k-th best.
 */
export function topK(logits: ArrayLike<number>, alive: Uint8Array, count: number, k: number): Match[] {
  const heapIdx = new Int32Array(k);
  const heapVal = new Float64Array(k);
  let size = 0;
  // "worse" = smaller logit, or equal logit and larger index.
  const worse = (a: number, b: number) => heapVal[a] < heapVal[b] || (heapVal[a] === heapVal[b] && heapIdx[a] > heapIdx[b]);
  const swap = (a: number, b: number) => {
    const i = heapIdx[a];
    heapIdx[a] = heapIdx[b];
    heapIdx[b] = i;
    const v = heapVal[a];
    heapVal[a] = heapVal[b];
    heapVal[b] = v;
  };
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && worse(l, m)) m = l;
      if (r < size && worse(r, m)) m = r;
      if (m === i) return;
      swap(i, m);
      i = m;
    }
  };
  for (let row = 0; row < count; row++) {
    if (alive[row] === 0) continue;
    const v = logits[row];
    if (size < k) {
      heapIdx[size] = row;
      heapVal[size] = v;
      let i = size++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(i, p)) break;
        swap(i, p);
        i = p;
      }
    } else if (v > heapVal[0]) {
      // Rows arrive in index order, so an equal logit never displaces an earlier row.
      heapIdx[0] = row;
      heapVal[0] = v;
      down(0);
    }
  }
  const out: Match[] = [];
  for (let i = 0; i < size; i++) out.push({ index: heapIdx[i], score: sigmoid(heapVal[i]), logit: heapVal[i] });
  return out.sort((a, b) => b.logit - a.logit || a.index - b.index);
}
