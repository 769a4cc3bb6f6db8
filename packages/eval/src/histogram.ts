export interface Histogram {
  /** Bin edges, bins + 1 of them, over [0, 1]. */
  edges: number[];
  genuine: number[];
  impostor: number[];
}

function counts(scores: ArrayLike<number>, bins: number): number[] {
  const c = new Array<number>(bins).fill(0);
  for (let i = 0; i < scores.length; i++) c[Math.min(bins - 1, Math.max(0, Math.floor(scores[i] * bins)))]++;
  return c;
}

/** Score histograms of genuine and impostor comparisons, over [0, 1] in equal bins. */
export function scoreHistogram(genuine: ArrayLike<number>, impostor: ArrayLike<number>, bins = 50): Histogram {
  return { edges: Array.from({ length: bins + 1 }, (_, i) => i / bins), genuine: counts(genuine, bins), impostor: counts(impostor, bins) };
}
