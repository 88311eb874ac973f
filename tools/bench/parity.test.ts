import { describe, expect, it } from 'vitest';
import { meanAndStd, multiSeedComparison, pairedDifference, parityGoal, parityTableText } from './parity';

// The statistics of `npm run bench -- parity`, on hand-made accuracy tables (no training).
describe('parity bench statistics', () => {
  it('pairs per-fold accuracies with a 95% t-interval over the folds', () => {
    const paired = pairedDifference([0.7, 0.72, 0.68], [0.69, 0.7, 0.69]);
    expect(paired.differences.map((d) => Number(d.toFixed(10)))).toEqual([0.01, 0.02, -0.01]);
    expect(paired.mean).toBeCloseTo(0.02 / 3, 12);
    expect(paired.std).toBeCloseTo(Math.sqrt(((0.01 - 0.02 / 3) ** 2 + (0.02 - 0.02 / 3) ** 2 + (-0.01 - 0.02 / 3) ** 2) / 2), 12);
    // df = 2: t_0.975 = 4.303
    expect(paired.upper - paired.mean).toBeCloseTo((4.303 * paired.std) / Math.sqrt(3), 12);
    expect(paired.df).toBe(2);
    expect(() => pairedDifference([0.7], [0.7])).toThrow(/≥ 2 folds/);
  });

  it('with one seed, reduces to the single-seed comparison', () => {
    const detl = [0.6887, 0.6698, 0.7022, 0.7022, 0.6751];
    const keras = [0.7358, 0.6698, 0.7367, 0.7241, 0.7476];
    const one = multiSeedComparison([detl], [keras]);
    const single = pairedDifference(detl, keras);
    expect(one.pairedByFold).toEqual(single);
    expect(one.pairedAllRuns).toEqual(single);
    expect(one.a.mean).toBeCloseTo(meanAndStd(detl).mean, 12);
    expect(one.a.std).toBeCloseTo(meanAndStd(detl).std, 12);
    expect(one.a.stdOfSeedMeans).toBe(0);
    // The first parity run (bench/results/parity.json firstRun): −3.5 points [−6.9, −0.2], not met.
    expect(single.mean).toBeCloseTo(-0.0352, 4);
    expect(single.lower).toBeCloseTo(-0.069, 3);
    expect(single.upper).toBeCloseTo(-0.0015, 3);
    expect(one.goal).toEqual({ meansWithin2Points: false, intervalIncludesZero: false, met: false });
  });

  it('averages the seeds within each fold, and pairs folds (df = folds − 1) and all seed × fold runs (df = runs − 1)', () => {
    // seeds × folds: 3 seeds, 4 folds.
    const detl = [
      [0.7, 0.66, 0.72, 0.68],
      [0.69, 0.67, 0.7, 0.7],
      [0.71, 0.65, 0.74, 0.69],
    ];
    const keras = [
      [0.73, 0.64, 0.71, 0.7],
      [0.68, 0.69, 0.72, 0.66],
      [0.7, 0.68, 0.73, 0.71],
    ];
    const c = multiSeedComparison(detl, keras);
    expect(c.a.runs).toBe(12);
    expect(c.a.mean).toBeCloseTo(meanAndStd(detl.flat()).mean, 12);
    expect(c.a.std).toBeCloseTo(meanAndStd(detl.flat()).std, 12);
    expect(c.a.seedMeans.map((m) => Number(m.toFixed(10)))).toEqual([0.69, 0.69, 0.6975]);
    expect(c.a.stdOfSeedMeans).toBeCloseTo(meanAndStd([0.69, 0.69, 0.6975]).std, 12);
    expect(c.a.foldMeans.map((m) => Number(m.toFixed(10)))).toEqual([0.7, 0.66, 0.72, 0.69]);
    expect(c.b.foldMeans.map((m) => Number(m.toFixed(10)))).toEqual([0.7033333333, 0.67, 0.72, 0.69]);
    // The fold-level pairs are the seed-averaged differences of each fold.
    const byFold = c.pairedByFold;
    expect(byFold?.df).toBe(3);
    const foldDifferences = [0, 1, 2, 3].map((f) => meanAndStd(detl.map((row, s) => (row[f] as number) - (keras[s]?.[f] as number))).mean);
    byFold?.differences.forEach((d, f) => expect(d).toBeCloseTo(foldDifferences[f] as number, 12));
    expect(byFold?.upper).toBeCloseTo((byFold?.mean ?? 0) + (3.182 * (byFold?.std ?? 0)) / 2, 12);
    // All pairs: 12 differences, df 11 (t_0.975 = 2.201).
    const all = c.pairedAllRuns;
    expect(all?.df).toBe(11);
    expect(all?.differences).toHaveLength(12);
    expect(all?.mean).toBeCloseTo(byFold?.mean ?? NaN, 12);
    expect(all?.upper).toBeCloseTo((all?.mean ?? 0) + (2.201 * (all?.std ?? 0)) / Math.sqrt(12), 12);
    // The goal uses the grand means and the fold-level interval.
    expect(c.goal).toEqual(parityGoal(c.a.mean, c.b.mean, byFold));
    expect(c.goal.met).toBe(true);
  });

  it('decides the goal on the fold-level interval, not the narrower all-pairs one', () => {
    // Two seeds, two folds, detl ahead by 0.75–2.25 points on every run: the all-pairs interval
    // (df 3) excludes 0, the fold-level one (df 1) does not; the goal follows the fold level.
    const c = multiSeedComparison(
      [
        [0.7, 0.7],
        [0.7, 0.7],
      ],
      [
        [0.6925, 0.6775],
        [0.691, 0.679],
      ],
    );
    expect(c.pairedByFold?.df).toBe(1);
    expect(c.pairedAllRuns?.lower).toBeGreaterThan(0);
    expect(c.pairedByFold?.lower).toBeLessThan(0);
    expect(c.goal).toEqual({ meansWithin2Points: true, intervalIncludesZero: true, met: true });
    // Means 2.5 points apart fail the goal whatever the interval.
    expect(parityGoal(0.7, 0.725, { lower: -0.1, upper: 0.1 })).toEqual({ meansWithin2Points: false, intervalIncludesZero: true, met: false });
    expect(parityGoal(0.7, 0.71, null)).toEqual({ meansWithin2Points: true, intervalIncludesZero: null, met: false });
  });

  it('has no interval for one fold and one seed, and refuses tables of different shapes', () => {
    const one = multiSeedComparison([[0.7]], [[0.69]]);
    expect(one.pairedByFold).toBeNull();
    expect(one.pairedAllRuns).toBeNull();
    // One fold, two seeds: no fold-level interval, but two pairs over the runs.
    expect(multiSeedComparison([[0.7], [0.72]], [[0.69], [0.7]]).pairedAllRuns?.df).toBe(1);
    expect(() => multiSeedComparison([[0.7, 0.7]], [[0.7]])).toThrow(/same shape/);
    expect(() => multiSeedComparison([[0.7, 0.7]], [[0.7, 0.7], [0.7, 0.7]])).toThrow(/same shape/);
    expect(() => multiSeedComparison([], [])).toThrow(/same shape/);
  });

  it('prints every run, the per-fold seed means and the intervals', () => {
    const c = multiSeedComparison(
      [
        [0.7, 0.66],
        [0.68, 0.7],
      ],
      [
        [0.72, 0.65],
        [0.7, 0.69],
      ],
    );
    const text = parityTableText(
      [
        { seed: 1, fold: 0, detl: 0.7, keras: 0.72, difference: -0.02 },
        { seed: 1, fold: 1, detl: 0.66, keras: 0.65, difference: 0.01 },
        { seed: 2, fold: 0, detl: 0.68, keras: 0.7, difference: -0.02 },
        { seed: 2, fold: 1, detl: 0.7, keras: 0.69, difference: 0.01 },
      ],
      [
        { fold: 0, detl: 0.69, keras: 0.71, difference: -0.02 },
        { fold: 1, detl: 0.68, keras: 0.67, difference: 0.01 },
      ],
      c,
    );
    expect(text).toContain('per fold, mean over the seeds');
    expect(text).toMatch(/^\s+2\s+1\s+70\.0\s+69\.0\s+1\.0$/m);
    expect(text).toContain('detl 68.5% ± 1.9 over 4 runs, seed means 68.0 / 69.0 (std 0.7)');
    expect(text).toContain('over folds (seed-averaged): -0.5 points');
    expect(text).toContain('(df 1)');
    expect(text).toContain('over all seed × fold pairs: -0.5 points');
    expect(text).toContain('(df 3)');
  });
});
