/**
 * The paper's evaluation in one call: per-fold accuracies, their mean ± std, and the confusion
 * matrix summed over folds, plus the scores the paper does not report but a reader wants (per-class
 * precision / recall / F1, ROC AUC, a bootstrap interval).
 */
import {
  bootstrapAccuracyInterval,
  classificationReport,
  confusionMatrix,
  meanStd,
  oneVsRestRocAuc,
  sumConfusionMatrices,
  type AccuracyInterval,
  type BootstrapOptions,
  type ClassificationReport,
  type MeanStd,
  type RocAucResult,
} from './metrics';

/** One fold's test-set predictions. */
export interface FoldPredictions {
  actual: ArrayLike<number>;
  predicted: ArrayLike<number>;
  /** Row-major n × k class probabilities; needed on every fold for ROC AUC. */
  probabilities?: Float32Array | readonly number[];
}

/** What {@link summarizeCrossValidation} returns. */
export interface CrossValidationSummary {
  /** Accuracy of each fold, in fold order. */
  foldAccuracies: number[];
  /** Mean ± sample std of the fold accuracies: the paper's headline number. */
  accuracy: MeanStd;
  /** Confusion matrices of the folds, then their sum (the paper's figure). */
  foldConfusionMatrices: number[][][];
  confusionMatrix: number[][];
  /** Precision / recall / F1 of the summed matrix. */
  report: ClassificationReport;
  /** One-vs-rest AUC over the pooled test predictions; null unless every fold has probabilities. */
  rocAuc: RocAucResult | null;
  /** Bootstrap interval of the pooled accuracy. */
  accuracyInterval: AccuracyInterval;
}

/**
 * Summarises k-fold cross-validation from each fold's test predictions.
 *
 * Pooled quantities (summed matrix, AUC, bootstrap interval) treat the folds' test sets as one
 * sample scored by k slightly different models, as scikit-learn's `cross_val_predict` does; the
 * per-fold accuracies keep the spread between models visible.
 *
 * @throws RangeError for no folds, an empty fold, or inconsistent lengths
 */
export function summarizeCrossValidation(
  folds: readonly FoldPredictions[],
  classNames: readonly string[],
  bootstrap: BootstrapOptions,
): CrossValidationSummary {
  if (folds.length === 0) throw new RangeError('no folds to summarise');
  const k = classNames.length;
  const foldConfusionMatrices = folds.map((fold, i) => {
    if (fold.actual.length === 0) throw new RangeError(`fold ${i} has no test samples`);
    return confusionMatrix(fold.actual, fold.predicted, k);
  });
  const foldAccuracies = foldConfusionMatrices.map((m) => classificationReport(m, classNames).accuracy);
  const matrix = sumConfusionMatrices(foldConfusionMatrices);
  const actual = folds.flatMap((fold) => Array.from(fold.actual));
  const predicted = folds.flatMap((fold) => Array.from(fold.predicted));
  const withProbabilities = folds.every((fold) => fold.probabilities !== undefined);
  const rocAuc = withProbabilities
    ? oneVsRestRocAuc(actual, folds.flatMap((fold) => Array.from(fold.probabilities ?? [])), k)
    : null;
  return {
    foldAccuracies,
    accuracy: meanStd(foldAccuracies),
    foldConfusionMatrices,
    confusionMatrix: matrix,
    report: classificationReport(matrix, classNames),
    rocAuc,
    accuracyInterval: bootstrapAccuracyInterval(actual, predicted, bootstrap),
  };
}
