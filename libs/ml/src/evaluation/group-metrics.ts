/**
 * Accuracy per (class, source) cell of pooled cross-validation predictions. Source shortcuts are
 * how chest X-ray models fail on other hospitals' images: a model can score well on average while
 * one class of one source (say, covid images from the one hospital that sent few) is mostly wrong.
 * The worst cell says that in one number, which the mean hides.
 */

/** Accuracy of one (class, source) cell. */
export interface GroupAccuracy {
  className: string;
  source: string;
  /** Held-out images of this class from this source. */
  total: number;
  correct: number;
  /** correct / total. */
  accuracy: number;
}

/** What {@link accuracyByClassAndSource} returns. */
export interface ClassSourceAccuracy {
  /** Every cell with at least one image, by class (in `classNames` order), then source. */
  cells: GroupAccuracy[];
  /**
   * The cell with the lowest accuracy among those with at least `minImages` images (ties: the
   * larger cell, then class order, then source name); null when no cell is that large.
   */
  worst: GroupAccuracy | null;
  /** The smallest cell size {@link ClassSourceAccuracy.worst} considered. */
  minImages: number;
}

/**
 * Accuracy of each (true class, source) cell over held-out predictions.
 *
 * @param actual - true class index per image
 * @param predicted - predicted class index per image, same length
 * @param sources - the source (hospital, repository, collection) of each image, same length
 * @param classNames - names of the class indices
 * @param options.minImages - smallest cell that may be named the worst (default 5): a 1-image
 *   cell at 0% says nothing about a source
 * @throws RangeError on length mismatch, a label outside the classes, an empty source name or a
 *   minImages below 1
 */
export function accuracyByClassAndSource(
  actual: ArrayLike<number>,
  predicted: ArrayLike<number>,
  sources: readonly string[],
  classNames: readonly string[],
  options: { minImages?: number } = {},
): ClassSourceAccuracy {
  const minImages = options.minImages ?? 5;
  if (!Number.isInteger(minImages) || minImages < 1) throw new RangeError(`minImages must be a positive integer, got ${minImages}`);
  if (actual.length !== predicted.length || actual.length !== sources.length) {
    throw new RangeError(`actual (${actual.length}), predicted (${predicted.length}) and sources (${sources.length}) differ in length`);
  }
  const counts = new Map<string, { classIndex: number; source: string; total: number; correct: number }>();
  for (let i = 0; i < actual.length; i += 1) {
    const label = actual[i] as number;
    const source = sources[i] as string;
    if (!Number.isInteger(label) || label < 0 || label >= classNames.length) throw new RangeError(`actual[${i}] = ${label} is not a class index in [0, ${classNames.length})`);
    if (typeof source !== 'string' || source.length === 0) throw new RangeError(`sources[${i}] is empty: every image needs a source`);
    const key = `${label}\u0000${source}`;
    const cell = counts.get(key) ?? { classIndex: label, source, total: 0, correct: 0 };
    cell.total += 1;
    if (predicted[i] === label) cell.correct += 1;
    counts.set(key, cell);
  }
  const cells = [...counts.values()]
    .sort((a, b) => a.classIndex - b.classIndex || (a.source < b.source ? -1 : a.source > b.source ? 1 : 0))
    .map(({ classIndex, source, total, correct }) => ({ className: classNames[classIndex] as string, source, total, correct, accuracy: correct / total }));
  let worst: GroupAccuracy | null = null;
  for (const cell of cells) {
    if (cell.total < minImages) continue;
    if (worst === null || cell.accuracy < worst.accuracy || (cell.accuracy === worst.accuracy && cell.total > worst.total)) worst = cell;
  }
  return { cells, worst, minImages };
}
