import type { ResultSummary } from './tracking-types';

/**
 * A valid run summary (four classes, two folds at 0.8 and 0.9) for tests that finish a run, with
 * `overrides` on top: the summary column is zod-checked on every read, so the tests share one
 * shape that passes instead of each spelling out its fourteen fields.
 */
export function testResultSummary(overrides: Partial<ResultSummary> = {}): ResultSummary {
  return {
    classes: ['normal', 'pneumonia', 'other_disease', 'covid'],
    foldAccuracies: [0.8, 0.9],
    meanAccuracy: 0.85,
    stdAccuracy: 0.05,
    perClass: { normal: { precision: 1, recall: 0.5, f1: 0.667, support: 2 } },
    confusionMatrix: [
      [1, 1, 0, 0],
      [0, 2, 0, 0],
      [0, 0, 2, 0],
      [0, 0, 0, 2],
    ],
    macroF1: 0.8,
    accuracyInterval: { lower: 0.6, upper: 1, level: 0.95 },
    rocAuc: { normal: 0.9, pneumonia: null },
    reportKey: 'report/summary.json',
    figureKeys: [],
    ...overrides,
  };
}
