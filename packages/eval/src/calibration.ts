import { NotMeasurableError } from './errors/index.js';
import { rate, trialsNeeded, type Rate } from './rate.js';
import { sortedDescending, thresholdForRate } from './threshold.js';

export interface CalibrationOptions {
  /** The FPIR to hold: the fraction of people never enrolled that a search may accept as someone. */
  fpir: number;
  /** Gallery size the threshold is for (default: the one the searches ran against). */
  gallerySize?: number;
}

/** What `yoco calibrate` writes and the coordinator reads (THRESHOLD_FILE). */
export interface Calibration {
  threshold: number;
  fpir: number;
  gallery_size: number;
  /** Gallery size the searches ran against. */
  searched_gallery_size: number;
  /** Non-mated searches the threshold was taken from. */
  searches: number;
  /** The FPIR the threshold was set to at the searched gallery size (= fpir unless extrapolated). */
  searched_fpir: number;
  /** FPIR measured on the searches at the threshold, with its count and interval. */
  measured: Rate;
  extrapolated: boolean;
  head_id: string;
  created_at: string;
  source: string;
}

/**
 * The threshold from 1:N impostor searches: each value is the top score of
 * one search for a person not enrolled, against a gallery of M. An impostor
 * is accepted when its top candidate clears the threshold, so FPIR is the
 * fraction of top scores at or above it, not a pair FMR.
 *
 * For a gallery of N > M (or < M) the top score over N is taken as the best
 * of N/M independent searches over M: FPIR_N = 1 - (1 - FPIR_M)^(N/M), so
 * the threshold is set at FPIR_M = 1 - (1 - fpir)^(M/N). That assumes the
 * new gallery's people are like the searched ones; measure at N when you can.
 */
export function calibrateThreshold(nonMatedTop: ArrayLike<number>, searchedGallerySize: number, o: CalibrationOptions & { headId: string; source: string }): Calibration {
  if (!(o.fpir > 0 && o.fpir < 1)) throw new RangeError(`fpir must be in (0, 1), got ${o.fpir}`);
  if (!(Number.isInteger(searchedGallerySize) && searchedGallerySize >= 1)) throw new RangeError(`the searched gallery size must be a positive integer, got ${searchedGallerySize}`);
  const n = o.gallerySize ?? searchedGallerySize;
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`gallery size must be a positive integer, got ${n}`);
  const target = n === searchedGallerySize ? o.fpir : -Math.expm1((searchedGallerySize / n) * Math.log1p(-o.fpir));
  const need = trialsNeeded(target);
  if (nonMatedTop.length < need) {
    throw new NotMeasurableError(`${nonMatedTop.length} non-mated searches against ${searchedGallerySize}; FPIR ${o.fpir} at gallery size ${n} is ${Number(target.toPrecision(3))} per search at ${searchedGallerySize} and needs at least ${need}`);
  }
  const desc = sortedDescending(nonMatedTop);
  const threshold = thresholdForRate(desc, target);
  let passed = 0;
  while (passed < desc.length && desc[passed] >= threshold) passed++;
  return {
    threshold,
    fpir: o.fpir,
    gallery_size: n,
    searched_gallery_size: searchedGallerySize,
    searches: desc.length,
    searched_fpir: target,
    measured: rate(passed, desc.length),
    extrapolated: n !== searchedGallerySize,
    head_id: o.headId,
    created_at: new Date().toISOString(),
    source: o.source,
  };
}

/** FPIR at gallery size n predicted from a rate measured at gallery size m (the same assumption). */
export function fpirAtGallerySize(fpirAtM: number, m: number, n: number): number {
  return -Math.expm1((n / m) * Math.log1p(-fpirAtM));
}
