import { describe, expect, it } from 'vitest';
import { Rng } from '@yoco/common';
import { calibrateThreshold, clopperPearson, fpirAtGallerySize, NotMeasurableError, OpenSet, Verification, type SearchOutcome } from '@yoco/eval';

describe('Clopper-Pearson', () => {
  // Reference values: R's binom.test(x, n)$conf.int.
  it.each([
    [0, 10, 0, 0.3084971],
    [5, 10, 0.187086, 0.812914],
    [3, 1000, 0.000619, 0.0087417],
    [10, 10, 0.6915029, 1],
  ])('%i of %i', (k, n, lo, hi) => {
    const [a, b] = clopperPearson(k, n);
    expect(a).toBeCloseTo(lo, 6);
    expect(b).toBeCloseTo(hi, 6);
  });
  it('refuses counts outside 0..n', () => {
    expect(() => clopperPearson(11, 10)).toThrow(RangeError);
  });
});

describe('1:1 operating points', () => {
  it('FNMR at the threshold that holds FMR, counted as the deployment compares (score >= threshold)', () => {
    // 10000 impostors at 0.0000, 0.0001, ..., 0.9999; genuine at 0.9 (30 of them) and 0.99995 (70).
    const impostor = Array.from({ length: 10_000 }, (_, i) => i / 10_000);
    const genuine = [...Array(30).fill(0.9), ...Array(70).fill(0.99995)];
    const v = new Verification(genuine, impostor);
    const p = v.at(1e-2);
    expect(p.measurable).toBe(true);
    // 100 impostors may pass: those >= 0.99; so 0.9 is rejected, 0.99995 accepted.
    expect(p.falsePositive!.count).toBe(100);
    expect(p.falseNegative).toMatchObject({ count: 30, total: 100 });
    expect(v.at(1e-3).falsePositive!.count).toBe(10);
    // 10000 impostor pairs are fewer than 3 / 1e-4.
    expect(v.at(1e-4)).toMatchObject({ measurable: false });
  });
});

describe('1:N open set', () => {
  it('FNIR counts a mate that is not top-1 as a miss at any threshold; FPIR is over non-mated top scores', () => {
    const outcomes: SearchOutcome[] = [];
    const ranks: number[] = [];
    for (let i = 0; i < 100; i++) {
      // 80 mates on top at 0.9; 10 on top at 0.2; 10 ranked second (a stranger scores higher).
      const rank = i < 90 ? 1 : 2;
      outcomes.push({ mated: true, mateScore: i < 80 ? 0.9 : i < 90 ? 0.2 : 0.95, nonMateScore: rank === 1 ? 0.1 : 0.97 });
      ranks.push(rank);
    }
    for (let i = 0; i < 300; i++) outcomes.push({ mated: false, mateScore: NaN, nonMateScore: i < 3 ? 0.99 : 0.3 });
    const o = new OpenSet(outcomes, ranks, 50);
    const p = o.at(1e-2);
    expect(p.falsePositive).toMatchObject({ count: 3, total: 300 });
    expect(p.falseNegative).toMatchObject({ count: 20, total: 100 });
    expect(o.rankRates().rank1).toMatchObject({ count: 90, total: 100 });
    expect(o.at(1e-3)).toMatchObject({ measurable: false });
  });
});

describe('calibration from 1:N impostor searches', () => {
  /** Top scores of searches against M people, each comparison uniform on [0, 1): the top of M is Beta(M, 1). */
  function tops(rng: Rng, searches: number, m: number): number[] {
    return Array.from({ length: searches }, () => {
      let best = 0;
      for (let j = 0; j < m; j++) best = Math.max(best, rng.next());
      return best;
    });
  }

  it('holds the FPIR it promises on held-out searches, at the searched size and extrapolated to another', () => {
    const rng = new Rng(5);
    const c = calibrateThreshold(tops(rng, 20_000, 50), 50, { fpir: 0.01, headId: 'h', source: 'test' });
    // Exact for this model: FPIR(t) = 1 - t^50. The estimate is within its sampling error (~7%).
    expect(1 - c.threshold ** 50).toBeGreaterThan(0.0085);
    expect(1 - c.threshold ** 50).toBeLessThan(0.0115);
    const heldOut = tops(rng, 20_000, 50).filter((t) => Math.fround(t) >= c.threshold).length;
    const [lo, hi] = clopperPearson(heldOut, 20_000);
    expect(lo).toBeLessThanOrEqual(0.0115);
    expect(hi).toBeGreaterThanOrEqual(0.0085);

    // Searched against 50, held for a gallery of 400: the 400-searches' FPIR is the promised one.
    const big = calibrateThreshold(tops(rng, 20_000, 50), 50, { fpir: 0.01, gallerySize: 400, headId: 'h', source: 'test' });
    expect(big.extrapolated).toBe(true);
    expect(big.searched_fpir).toBeCloseTo(1 - 0.99 ** (50 / 400), 10);
    expect(big.threshold).toBeGreaterThan(c.threshold);
    const at400 = tops(rng, 5_000, 400).filter((t) => Math.fround(t) >= big.threshold).length;
    const [lo4, hi4] = clopperPearson(at400, 5_000);
    expect(lo4).toBeLessThan(0.01);
    expect(hi4).toBeGreaterThan(0.01);
    expect(fpirAtGallerySize(big.searched_fpir, 50, 400)).toBeCloseTo(0.01, 10);
  });

  it('says the set is too small instead of returning a number', () => {
    expect(() => calibrateThreshold(tops(new Rng(1), 1000, 10), 10, { fpir: 0.001, headId: 'h', source: 't' })).toThrow(NotMeasurableError);
  });
});
