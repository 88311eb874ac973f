/**
 * Classification metrics for the DETL evaluation: confusion matrices (summed over folds, as the paper
 * reports them), per-class precision / recall / F1, mean ± std over folds, one-vs-rest ROC AUC and a
 * bootstrap interval for accuracy. Pure TypeScript so that reports can be computed anywhere (worker,
 * CLI) without loading tfjs.
 */

import { mulberry32 } from '@detl/config';

/** Integer class label in `[0, numClasses)`; anything else is a caller bug, so it throws. */
function checkLabel(value: number, numClasses: number, what: string, index: number): number {
  if (!Number.isInteger(value) || value < 0 || value >= numClasses) {
    throw new RangeError(`${what}[${index}] = ${value} is not a class index in [0, ${numClasses})`);
  }
  return value;
}

function checkNumClasses(numClasses: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new RangeError(`numClasses must be a positive integer, got ${numClasses}`);
  }
}

function zeroMatrix(n: number): number[][] {
  return Array.from({ length: n }, () => new Array<number>(n).fill(0));
}

/** Row `r` of a square matrix; exists for every `r < matrix.length` after {@link checkSquare}. */
function row(matrix: readonly (readonly number[])[], r: number): readonly number[] {
  const result = matrix[r];
  if (result === undefined) throw new RangeError(`matrix has no row ${r}`);
  return result;
}

function checkSquare(matrix: readonly (readonly number[])[], what = 'matrix'): number {
  const n = matrix.length;
  if (n === 0) throw new RangeError(`${what} is empty`);
  matrix.forEach((r, i) => {
    if (r.length !== n) throw new RangeError(`${what} is not square: row ${i} has ${r.length} columns, expected ${n}`);
    r.forEach((v, j) => {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`${what}[${i}][${j}] = ${v} is not a count`);
    });
  });
  return n;
}

/**
 * Confusion matrix with rows = actual class and columns = predicted class, so `m[a][p]` counts
 * samples of class `a` predicted as `p` (the layout of the paper's figures and of scikit-learn).
 *
 * @param actual - true class index per sample
 * @param predicted - predicted class index per sample, same length as `actual`
 * @param numClasses - size of the (square) matrix; classes absent from both inputs get zero rows
 * @throws RangeError on length mismatch or a label outside `[0, numClasses)`
 */
export function confusionMatrix(
  actual: ArrayLike<number>,
  predicted: ArrayLike<number>,
  numClasses: number,
): number[][] {
  checkNumClasses(numClasses);
  if (actual.length !== predicted.length) {
    throw new RangeError(`actual has ${actual.length} labels but predicted has ${predicted.length}`);
  }
  const matrix = zeroMatrix(numClasses);
  for (let i = 0; i < actual.length; i++) {
    const a = checkLabel(actual[i] as number, numClasses, 'actual', i);
    const p = checkLabel(predicted[i] as number, numClasses, 'predicted', i);
    (matrix[a] as number[])[p] = ((matrix[a] as number[])[p] as number) + 1;
  }
  return matrix;
}

/**
 * Element-wise sum of confusion matrices, e.g. the per-fold matrices of a cross-validation: the paper
 * reports the matrix summed over its 5 folds.
 *
 * @throws RangeError when the list is empty or the matrices differ in size
 */
export function sumConfusionMatrices(matrices: readonly (readonly (readonly number[])[])[]): number[][] {
  const first = matrices[0];
  if (first === undefined) throw new RangeError('no confusion matrices to sum');
  const n = checkSquare(first, 'matrices[0]');
  const total = zeroMatrix(n);
  matrices.forEach((m, k) => {
    if (checkSquare(m, `matrices[${k}]`) !== n) {
      throw new RangeError(`matrices[${k}] is ${m.length}x${m.length}, expected ${n}x${n}`);
    }
    for (let i = 0; i < n; i++) {
      const target = total[i] as number[];
      const source = row(m, i);
      for (let j = 0; j < n; j++) target[j] = (target[j] as number) + (source[j] as number);
    }
  });
  return total;
}

/** Scores of one class in a {@link ClassificationReport}. */
export interface ClassScores {
  className: string;
  /** TP / (TP + FP); 0 when the class was never predicted (0/0). */
  precision: number;
  /** TP / (TP + FN); 0 when the class has no samples (0/0). */
  recall: number;
  /** Harmonic mean 2PR / (P + R); 0 when P + R = 0. */
  f1: number;
  /** Number of samples whose actual class is this one (the row sum). */
  support: number;
}

/** What {@link classificationReport} returns. */
export interface ClassificationReport {
  /** Trace / total. */
  accuracy: number;
  perClass: ClassScores[];
  /** Unweighted mean of the per-class F1 over all classes, including classes with zero support. */
  macroF1: number;
}

/** a / b, with the 0/0 (and x/0) case defined as 0: a class never predicted has no precision to credit. */
function ratioOrZero(a: number, b: number): number {
  return b === 0 ? 0 : a / b;
}

/**
 * Accuracy and per-class precision, recall, F1 and support from a confusion matrix
 * (rows = actual, columns = predicted).
 *
 * Undefined ratios are defined as 0, as scikit-learn does with `zero_division=0`: a class that is
 * never predicted has precision 0, a class with no samples has recall 0, and F1 is 0 when
 * precision + recall is 0. This never inflates a score. Macro F1 averages over every class, so a
 * class without support pulls it down; a report for such data is suspect anyway.
 *
 * @throws RangeError when the matrix is not square, the names do not match its size, or it holds no
 *   samples at all (an accuracy of nothing is a bug upstream, not a number)
 */
export function classificationReport(
  matrix: readonly (readonly number[])[],
  classNames: readonly string[],
): ClassificationReport {
  const n = checkSquare(matrix);
  if (classNames.length !== n) {
    throw new RangeError(`${classNames.length} class names for a ${n}x${n} confusion matrix`);
  }
  let total = 0;
  let correct = 0;
  const colSums = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    const r = row(matrix, i);
    for (let j = 0; j < n; j++) {
      const v = r[j] as number;
      total += v;
      colSums[j] = (colSums[j] as number) + v;
      if (i === j) correct += v;
    }
  }
  if (total === 0) throw new RangeError('confusion matrix holds no samples');
  const perClass = classNames.map((className, c): ClassScores => {
    const r = row(matrix, c);
    const tp = r[c] as number;
    const support = r.reduce((s, v) => s + v, 0);
    const precision = ratioOrZero(tp, colSums[c] as number);
    const recall = ratioOrZero(tp, support);
    const f1 = ratioOrZero(2 * precision * recall, precision + recall);
    return { className, precision, recall, f1, support };
  });
  const macroF1 = perClass.reduce((s, c) => s + c.f1, 0) / n;
  return { accuracy: correct / total, perClass, macroF1 };
}

/** What {@link meanStd} returns. */
export interface MeanStd {
  mean: number;
  /** Sample standard deviation (divisor n − 1); 0 for a single value. */
  std: number;
  n: number;
}

/**
 * Mean and sample standard deviation (Bessel-corrected, divisor n − 1), the usual reading of the
 * paper's "mean ± std over 5 folds": the folds are a sample of possible splits, not the population.
 * With a single value the spread is unknown; it is reported as 0 so that one-fold demo runs still
 * print, and `n` says how much to trust it.
 *
 * @throws RangeError for an empty list or a non-finite value
 */
export function meanStd(values: ArrayLike<number>): MeanStd {
  const n = values.length;
  if (n === 0) throw new RangeError('meanStd of no values');
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v)) throw new RangeError(`values[${i}] = ${v} is not finite`);
    sum += v;
  }
  const mean = sum / n;
  if (n === 1) return { mean, std: 0, n };
  let squares = 0;
  for (let i = 0; i < n; i++) squares += ((values[i] as number) - mean) ** 2;
  return { mean, std: Math.sqrt(squares / (n - 1)), n };
}

/** What {@link oneVsRestRocAuc} returns. */
export interface RocAucResult {
  /** AUC of class c against all others; NaN when the class has no positive or no negative samples. */
  perClass: number[];
  /** Unweighted mean over the classes whose AUC is defined; NaN when none is. */
  macro: number;
}

/**
 * One-vs-rest ROC AUC per class from predicted probabilities, computed exactly as the Mann–Whitney
 * statistic: AUC = (R⁺ − n⁺(n⁺+1)/2) / (n⁺ n⁻), where R⁺ is the rank sum of the positives' scores.
 * Tied scores get the average of the ranks they span, which counts a tied positive/negative pair as
 * half a correct ordering (the trapezoidal ROC area).
 *
 * @param actual - true class per sample
 * @param probabilities - row-major n × k scores (sample i, class c at `i * k + c`)
 * @param numClasses - k
 */
export function oneVsRestRocAuc(
  actual: ArrayLike<number>,
  probabilities: Float32Array | readonly number[],
  numClasses: number,
): RocAucResult {
  checkNumClasses(numClasses);
  const n = actual.length;
  if (probabilities.length !== n * numClasses) {
    throw new RangeError(`probabilities has ${probabilities.length} values, expected ${n} x ${numClasses}`);
  }
  for (let i = 0; i < n; i++) checkLabel(actual[i] as number, numClasses, 'actual', i);
  const order = new Array<number>(n);
  const ranks = new Float64Array(n);
  const perClass: number[] = [];
  for (let c = 0; c < numClasses; c++) {
    const score = (i: number): number => probabilities[i * numClasses + c] as number;
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => score(a) - score(b));
    // Average ranks (1-based) over runs of equal scores.
    for (let start = 0; start < n; ) {
      let end = start + 1;
      while (end < n && score(order[end] as number) === score(order[start] as number)) end++;
      const averageRank = (start + 1 + end) / 2;
      for (let j = start; j < end; j++) ranks[order[j] as number] = averageRank;
      start = end;
    }
    let positives = 0;
    let positiveRankSum = 0;
    for (let i = 0; i < n; i++) {
      if (actual[i] === c) {
        positives++;
        positiveRankSum += ranks[i] as number;
      }
    }
    const negatives = n - positives;
    perClass.push(
      positives === 0 || negatives === 0
        ? Number.NaN
        : (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives),
    );
  }
  const defined = perClass.filter((v) => !Number.isNaN(v));
  const macro = defined.length === 0 ? Number.NaN : defined.reduce((s, v) => s + v, 0) / defined.length;
  return { perClass, macro };
}

/**
 * Mulberry32: a tiny, fast 32-bit PRNG, good enough for resampling and fully determined by its seed
 * so that a report can be regenerated bit for bit.
 *
 * @returns a function giving uniform floats in [0, 1)
 */
export function createSeededRandom(seed: number): () => number {
  return mulberry32(seed);
}

/** Options of {@link bootstrapAccuracyInterval}. */
export interface BootstrapOptions {
  /** PRNG seed; the same seed and inputs give the same interval. */
  seed: number;
  /** Number of resamples (default 2000). */
  iterations?: number;
  /** Coverage of the interval in (0, 1) (default 0.95). */
  level?: number;
}

/** What {@link bootstrapAccuracyInterval} returns. */
export interface AccuracyInterval {
  /** Accuracy on the given samples (not the bootstrap mean). */
  accuracy: number;
  lower: number;
  upper: number;
  level: number;
  iterations: number;
}

/**
 * Percentile bootstrap confidence interval for accuracy: resample the n (actual, predicted) pairs
 * with replacement `iterations` times, and take the (1 − level)/2 and (1 + level)/2 quantiles of the
 * resampled accuracies (linear interpolation between order statistics). It treats samples as
 * independent, which images of one patient are not; patient-grouped folds limit that.
 *
 * @throws RangeError for empty or mismatched inputs, iterations < 1, or a level outside (0, 1)
 */
export function bootstrapAccuracyInterval(
  actual: ArrayLike<number>,
  predicted: ArrayLike<number>,
  options: BootstrapOptions,
): AccuracyInterval {
  const iterations = options.iterations ?? 2000;
  const level = options.level ?? 0.95;
  const n = actual.length;
  if (n !== predicted.length) {
    throw new RangeError(`actual has ${n} labels but predicted has ${predicted.length}`);
  }
  if (n === 0) throw new RangeError('bootstrap of no samples');
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError(`iterations must be ≥ 1, got ${iterations}`);
  if (!(level > 0 && level < 1)) throw new RangeError(`level must lie in (0, 1), got ${level}`);
  const correct = new Uint8Array(n);
  let hits = 0;
  for (let i = 0; i < n; i++) {
    correct[i] = actual[i] === predicted[i] ? 1 : 0;
    hits += correct[i] as number;
  }
  const random = createSeededRandom(options.seed);
  const accuracies = new Float64Array(iterations);
  for (let b = 0; b < iterations; b++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += correct[Math.floor(random() * n)] as number;
    accuracies[b] = sum / n;
  }
  accuracies.sort();
  return {
    accuracy: hits / n,
    lower: quantile(accuracies, (1 - level) / 2),
    upper: quantile(accuracies, (1 + level) / 2),
    level,
    iterations,
  };
}

/** Quantile of sorted values with linear interpolation between order statistics (numpy's default). */
function quantile(sorted: Float64Array, q: number): number {
  const position = q * (sorted.length - 1);
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  const lo = sorted[below] as number;
  const hi = sorted[above] as number;
  return lo + (hi - lo) * (position - below);
}
