/**
 * Thresholds are sent as float32 (IdentifyRequest.threshold) and compared
 * with float32 scores, so a threshold chosen here is a float32 too: the
 * smallest one above the score that must be rejected. Counting with
 * fround(score) makes a report's rates the ones the deployment will see.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The smallest float32 strictly greater than x (for x in [0, 1)). */
export function float32Above(x: number): number {
  f32[0] = x;
  if (f32[0] <= x) {
    if (f32[0] === 0) {
      u32[0] = 1;
    } else {
      u32[0] += 1;
    }
  }
  return f32[0];
}

/** Scores as float32, sorted from highest to lowest. */
export function sortedDescending(scores: ArrayLike<number>): Float32Array {
  const s = Float32Array.from(scores);
  s.sort();
  s.reverse();
  return s;
}

/** How many of the descending scores are >= t (binary search). */
export function countAtLeast(desc: Float32Array, t: number): number {
  let lo = 0;
  let hi = desc.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (desc[mid] >= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The lowest threshold at which at most `target` of the negatives pass:
 * just above the negative that would be one too many. 0 when all may pass.
 */
export function thresholdForRate(negativesDesc: Float32Array, target: number): number {
  const allowed = Math.floor(target * negativesDesc.length + 1e-9);
  if (allowed >= negativesDesc.length) return 0;
  return float32Above(negativesDesc[allowed]);
}
