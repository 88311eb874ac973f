import { describe, expect, it } from 'vitest';
import {
  bootstrapAccuracyInterval,
  classificationReport,
  confusionMatrix,
  createSeededRandom,
  meanStd,
  oneVsRestRocAuc,
  sumConfusionMatrices,
} from './metrics';

describe('confusionMatrix', () => {
  it('puts actual classes in rows and predictions in columns', () => {
    expect(confusionMatrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)).toEqual([
      [1, 1, 0],
      [0, 1, 0],
      [1, 0, 2],
    ]);
  });

  it('accepts typed arrays and keeps rows for absent classes', () => {
    expect(confusionMatrix(Int32Array.from([1, 1]), Uint8Array.from([0, 1]), 3)).toEqual([
      [0, 0, 0],
      [1, 1, 0],
      [0, 0, 0],
    ]);
  });

  it('rejects mismatched lengths and labels out of range', () => {
    expect(() => confusionMatrix([0, 1], [0], 2)).toThrow(RangeError);
    expect(() => confusionMatrix([0, 2], [0, 1], 2)).toThrow(/actual\[1\] = 2/);
    expect(() => confusionMatrix([0, 1], [0, 0.5], 2)).toThrow(/predicted\[1\]/);
    expect(() => confusionMatrix([0], [-1], 2)).toThrow(RangeError);
  });
});

describe('sumConfusionMatrices', () => {
  it('adds element-wise', () => {
    expect(
      sumConfusionMatrices([
        [
          [1, 2],
          [3, 4],
        ],
        [
          [10, 0],
          [0, 1],
        ],
      ]),
    ).toEqual([
      [11, 2],
      [3, 5],
    ]);
  });

  it('does not modify its inputs', () => {
    const a = [
      [1, 0],
      [0, 1],
    ];
    sumConfusionMatrices([a, a]);
    expect(a).toEqual([
      [1, 0],
      [0, 1],
    ]);
  });

  it('rejects empty lists and mismatched sizes', () => {
    expect(() => sumConfusionMatrices([])).toThrow(RangeError);
    expect(() => sumConfusionMatrices([[[1]], [[1, 0], [0, 1]]])).toThrow(/expected 1x1/);
    expect(() => sumConfusionMatrices([[[1, 0]]])).toThrow(/not square/);
  });
});

describe('classificationReport', () => {
  it('matches hand-computed precision, recall and F1', () => {
    // Matrix from the first confusionMatrix test. Column sums 2, 2, 2; row sums 2, 1, 3.
    const report = classificationReport(
      [
        [1, 1, 0],
        [0, 1, 0],
        [1, 0, 2],
      ],
      ['a', 'b', 'c'],
    );
    expect(report.accuracy).toBeCloseTo(4 / 6, 12);
    const [a, b, c] = report.perClass;
    expect(a).toEqual({ className: 'a', precision: 0.5, recall: 0.5, f1: 0.5, support: 2 });
    expect(b?.precision).toBeCloseTo(0.5, 12);
    expect(b?.recall).toBeCloseTo(1, 12);
    expect(b?.f1).toBeCloseTo(2 / 3, 12);
    expect(b?.support).toBe(1);
    expect(c?.precision).toBeCloseTo(1, 12);
    expect(c?.recall).toBeCloseTo(2 / 3, 12);
    expect(c?.f1).toBeCloseTo(0.8, 12);
    expect(c?.support).toBe(3);
    expect(report.macroF1).toBeCloseTo((0.5 + 2 / 3 + 0.8) / 3, 12);
  });

  it('defines 0/0 as 0 for a class never predicted and never present', () => {
    const report = classificationReport(
      [
        [3, 0],
        [0, 0],
      ],
      ['x', 'y'],
    );
    expect(report.accuracy).toBe(1);
    expect(report.perClass[1]).toEqual({ className: 'y', precision: 0, recall: 0, f1: 0, support: 0 });
    expect(report.macroF1).toBe(0.5);
  });

  it('gives precision 0 to a class only ever predicted wrongly, and recall 0 to one never predicted', () => {
    const report = classificationReport(
      [
        [1, 1],
        [2, 0],
      ],
      ['x', 'y'],
    );
    expect(report.perClass[1]).toEqual({ className: 'y', precision: 0, recall: 0, f1: 0, support: 2 });
    expect(report.perClass[0]?.precision).toBeCloseTo(1 / 3, 12);
    expect(report.perClass[0]?.recall).toBe(0.5);
  });

  it('rejects empty matrices and wrong name counts', () => {
    expect(() => classificationReport([[0, 0], [0, 0]], ['x', 'y'])).toThrow(/no samples/);
    expect(() => classificationReport([[1]], ['x', 'y'])).toThrow(RangeError);
    expect(() => classificationReport([[1, -1], [0, 1]], ['x', 'y'])).toThrow(/not a count/);
  });
});

describe('meanStd', () => {
  it('uses the sample (n − 1) standard deviation', () => {
    const { mean, std, n } = meanStd([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(mean).toBe(5);
    expect(std).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect(n).toBe(8);
  });

  it('reports std 0 for a single value and rejects empty or non-finite input', () => {
    expect(meanStd([0.8])).toEqual({ mean: 0.8, std: 0, n: 1 });
    expect(() => meanStd([])).toThrow(RangeError);
    expect(() => meanStd([1, Number.NaN])).toThrow(RangeError);
  });
});

/** AUC by counting ordered (positive, negative) pairs, ties as halves: the definition itself. */
function pairwiseAuc(actual: number[], scores: number[], positive: number): number {
  let good = 0;
  let pairs = 0;
  actual.forEach((a, i) => {
    if (a !== positive) return;
    actual.forEach((b, j) => {
      if (b === positive) return;
      pairs++;
      const si = scores[i] as number;
      const sj = scores[j] as number;
      good += si > sj ? 1 : si === sj ? 0.5 : 0;
    });
  });
  return good / pairs;
}

describe('oneVsRestRocAuc', () => {
  it('matches the textbook binary example', () => {
    // scikit-learn's roc_auc_score doc example: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8] → 0.75.
    const p1 = [0.1, 0.4, 0.35, 0.8];
    const probabilities = p1.flatMap((p) => [1 - p, p]);
    const { perClass, macro } = oneVsRestRocAuc([0, 0, 1, 1], probabilities, 2);
    expect(perClass[1]).toBeCloseTo(0.75, 12);
    expect(perClass[0]).toBeCloseTo(0.75, 12);
    expect(macro).toBeCloseTo(0.75, 12);
  });

  it('counts tied positive/negative pairs as half', () => {
    // Positives score 0.5 and 0.9, negatives 0.5 and 0.2: pairs 0.5 (tie) + 1 + 1 + 1 → 3.5 / 4.
    const p1 = [0.5, 0.5, 0.2, 0.9];
    const { perClass } = oneVsRestRocAuc([0, 1, 0, 1], Float32Array.from(p1.flatMap((p) => [1 - p, p])), 2);
    expect(perClass[1]).toBeCloseTo(0.875, 12);
  });

  it('agrees with pairwise counting on random multi-class data with many ties', () => {
    const random = createSeededRandom(7);
    const n = 60;
    const k = 4;
    const actual = Array.from({ length: n }, () => Math.floor(random() * k));
    // Coarse scores (multiples of 0.1) force ties.
    const probabilities = Array.from({ length: n * k }, () => Math.round(random() * 10) / 10);
    const { perClass, macro } = oneVsRestRocAuc(actual, probabilities, k);
    for (let c = 0; c < k; c++) {
      const scores = actual.map((_, i) => probabilities[i * k + c] as number);
      expect(perClass[c]).toBeCloseTo(pairwiseAuc(actual, scores, c), 12);
    }
    expect(macro).toBeCloseTo(perClass.reduce((s, v) => s + v, 0) / k, 12);
  });

  it('gives NaN for a class without positives and leaves it out of the macro mean', () => {
    const { perClass, macro } = oneVsRestRocAuc([0, 1], [0.9, 0.1, 0, 0.2, 0.8, 0], 3);
    expect(perClass[0]).toBe(1);
    expect(perClass[1]).toBe(1);
    expect(perClass[2]).toBeNaN();
    expect(macro).toBe(1);
  });

  it('rejects a probability array of the wrong size', () => {
    expect(() => oneVsRestRocAuc([0, 1], [0.5, 0.5, 0.5], 2)).toThrow(RangeError);
  });
});

describe('createSeededRandom', () => {
  it('is deterministic per seed and uniform-looking in [0, 1)', () => {
    const a = createSeededRandom(42);
    const b = createSeededRandom(42);
    const c = createSeededRandom(43);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(Array.from({ length: 10_000 }, () => b())).toEqual(xs);
    expect(c()).not.toBe(xs[0]);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.49);
    expect(mean).toBeLessThan(0.51);
  });
});

describe('bootstrapAccuracyInterval', () => {
  const n = 400;
  const actual = Array.from({ length: n }, (_, i) => i % 4);
  // Exactly 320 of 400 correct: accuracy 0.8.
  const predicted = actual.map((a, i) => (i % 5 === 0 ? (a + 1) % 4 : a));

  it('brackets the accuracy with about the normal-approximation width', () => {
    const interval = bootstrapAccuracyInterval(actual, predicted, { seed: 1, iterations: 2000, level: 0.95 });
    expect(interval.accuracy).toBe(0.8);
    // Normal approximation: 0.8 ± 1.96 · sqrt(0.8 · 0.2 / 400) = 0.8 ± 0.0392.
    expect(interval.lower).toBeGreaterThan(0.75);
    expect(interval.lower).toBeLessThan(0.77);
    expect(interval.upper).toBeGreaterThan(0.83);
    expect(interval.upper).toBeLessThan(0.85);
    expect(interval.level).toBe(0.95);
    expect(interval.iterations).toBe(2000);
  });

  it('is reproducible with a seed and narrower at a lower level', () => {
    const a = bootstrapAccuracyInterval(actual, predicted, { seed: 9, iterations: 500 });
    const b = bootstrapAccuracyInterval(actual, predicted, { seed: 9, iterations: 500 });
    const c = bootstrapAccuracyInterval(actual, predicted, { seed: 10, iterations: 500 });
    const narrow = bootstrapAccuracyInterval(actual, predicted, { seed: 9, iterations: 500, level: 0.5 });
    expect(b).toEqual(a);
    expect(c.lower !== a.lower || c.upper !== a.upper).toBe(true);
    expect(narrow.upper - narrow.lower).toBeLessThan(a.upper - a.lower);
  });

  it('collapses to a point when every prediction is right', () => {
    const interval = bootstrapAccuracyInterval([0, 1, 2], [0, 1, 2], { seed: 3, iterations: 100 });
    expect(interval).toMatchObject({ accuracy: 1, lower: 1, upper: 1 });
  });

  it('rejects bad options', () => {
    expect(() => bootstrapAccuracyInterval([], [], { seed: 1 })).toThrow(RangeError);
    expect(() => bootstrapAccuracyInterval([0], [0], { seed: 1, level: 1 })).toThrow(RangeError);
    expect(() => bootstrapAccuracyInterval([0], [0], { seed: 1, iterations: 0 })).toThrow(RangeError);
  });
});
