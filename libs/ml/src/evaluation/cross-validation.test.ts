import { describe, expect, it } from 'vitest';
import { summarizeCrossValidation } from './cross-validation';

const names = ['normal', 'covid'];

describe('summarizeCrossValidation', () => {
  it('reports per-fold accuracy, mean ± sample std and the summed matrix', () => {
    const summary = summarizeCrossValidation(
      [
        // 3 of 4 right.
        { actual: [0, 0, 1, 1], predicted: [0, 1, 1, 1] },
        // 2 of 2 right.
        { actual: [0, 1], predicted: [0, 1] },
      ],
      names,
      { seed: 1, iterations: 200 },
    );
    expect(summary.foldAccuracies).toEqual([0.75, 1]);
    expect(summary.accuracy.mean).toBeCloseTo(0.875, 12);
    // Sample std of {0.75, 1}: |1 − 0.75| / √2.
    expect(summary.accuracy.std).toBeCloseTo(0.25 / Math.SQRT2, 12);
    expect(summary.foldConfusionMatrices).toEqual([
      [
        [1, 1],
        [0, 2],
      ],
      [
        [1, 0],
        [0, 1],
      ],
    ]);
    expect(summary.confusionMatrix).toEqual([
      [2, 1],
      [0, 3],
    ]);
    // Pooled accuracy 5/6 differs from the mean of fold accuracies: both are reported.
    expect(summary.report.accuracy).toBeCloseTo(5 / 6, 12);
    expect(summary.accuracyInterval.accuracy).toBeCloseTo(5 / 6, 12);
    expect(summary.rocAuc).toBeNull();
  });

  it('pools probabilities for ROC AUC only when every fold has them', () => {
    const folds = [
      { actual: [0, 1], predicted: [0, 1], probabilities: [0.9, 0.1, 0.2, 0.8] },
      { actual: [0, 1], predicted: [1, 1], probabilities: [0.4, 0.6, 0.3, 0.7] },
    ];
    const summary = summarizeCrossValidation(folds, names, { seed: 2, iterations: 100 });
    // Pooled class-1 scores: negatives 0.1, 0.6; positives 0.8, 0.7 → every pair ordered: AUC 1.
    expect(summary.rocAuc?.perClass[1]).toBe(1);
    expect(summarizeCrossValidation([folds[0]!, { actual: [0], predicted: [0] }], names, { seed: 2 }).rocAuc).toBeNull();
  });

  it('rejects no folds and empty folds', () => {
    expect(() => summarizeCrossValidation([], names, { seed: 1 })).toThrow(RangeError);
    expect(() => summarizeCrossValidation([{ actual: [], predicted: [] }], names, { seed: 1 })).toThrow(/fold 0/);
  });
});
