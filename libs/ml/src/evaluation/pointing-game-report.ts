/**
 * The pointing game over many images, scored as Zhang et al. (2016) define it: a hit when the map's
 * maximum lies within 15 px of the annotated object at their 224 px input. The tolerance scales
 * with the image (4.3 px at 64 px), because a Grad-CAM map is only as fine as its feature map: at
 * 64 px the last conv block of small-vgg is 8 × 8, the bilinearly upsampled map can only peak on
 * one of its 64 cell centres (8 px apart), and at zero tolerance a correct map scores a miss
 * whenever the lesion lies between two centres. The strict (zero-tolerance) rate is kept beside it.
 */
import type { GradCamMethod } from '@detl/config';
import { pointingGame, type PointingGameResult } from './localization';

/** Zhang et al.'s tolerance: this many pixels at `atImageSize` px, scaled to the image. */
export const POINTING_GAME_TOLERANCE = { pixels: 15, atImageSize: 224 } as const;

/** The pointing-game tolerance for a `size` px image: 15 px at 224 px, scaled. */
export function pointingGameTolerancePx(size: number): number {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  return (POINTING_GAME_TOLERANCE.pixels * size) / POINTING_GAME_TOLERANCE.atImageSize;
}

/** Trials so far, per explained class index. Made by {@link createPointingGameTally}. */
export interface PointingGameTally {
  readonly perClass: Map<number, { scored: number; hits: number; strictHits: number }>;
  /** Image side of the trials (all must share it: the tolerance depends on it); null before the first. */
  size: number | null;
  /** How the scored maps are made (`gradCam.method`): rates of different methods are not comparable. */
  readonly method: GradCamMethod;
}

/** An empty tally of maps made with `method` (default `grad-cam`). */
export function createPointingGameTally(method: GradCamMethod = 'grad-cam'): PointingGameTally {
  return { perClass: new Map(), size: null, method };
}

/**
 * Scores one map against its lesion mask with the scaled tolerance, records the trial under
 * `classIndex` (hit and strict hit), and returns the tolerant result.
 * @throws RangeError when the image size differs from earlier trials, or as {@link pointingGame} does
 */
export function scorePointingGame(tally: PointingGameTally, heatmap: ArrayLike<number>, mask: Uint8Array, size: number, classIndex: number): PointingGameResult {
  if (tally.size !== null && tally.size !== size) throw new RangeError(`pointing-game trials of ${tally.size} px and ${size} px images cannot share one tolerance`);
  const result = pointingGame(heatmap, mask, size, { tolerancePx: pointingGameTolerancePx(size) });
  tally.size = size;
  const counts = tally.perClass.get(classIndex) ?? { scored: 0, hits: 0, strictHits: 0 };
  counts.scored += 1;
  if (result.hit) counts.hits += 1;
  if (result.distancePx === 0) counts.strictHits += 1;
  tally.perClass.set(classIndex, counts);
  return result;
}

/** Rates of one group of trials. */
export interface PointingGameRates {
  /** Trials (correctly classified images with a lesion mask). */
  scored: number;
  /** Hits within the scaled tolerance / scored. */
  rate: number;
  /** Peaks exactly on a lesion pixel / scored. */
  strictRate: number;
}

/** What {@link pointingGameReport} returns. */
export interface PointingGameReport extends PointingGameRates {
  /** How the scored maps were made (`gradCam.method`), so that rates are compared like with like. */
  method: GradCamMethod;
  /** The tolerance used, in pixels of the scored images. */
  tolerancePx: number;
  imageSize: number;
  /** Per explained class, by class name; classes without trials are left out. */
  perClass: Record<string, PointingGameRates>;
}

/** The tally as rates, overall and per class; null when nothing was scored (no masks, or nothing classified right). */
export function pointingGameReport(tally: PointingGameTally, classNames: readonly string[]): PointingGameReport | null {
  if (tally.size === null) return null;
  const rates = (counts: { scored: number; hits: number; strictHits: number }): PointingGameRates => ({
    scored: counts.scored,
    rate: counts.hits / counts.scored,
    strictRate: counts.strictHits / counts.scored,
  });
  const total = { scored: 0, hits: 0, strictHits: 0 };
  const perClass: Record<string, PointingGameRates> = {};
  for (const [classIndex, counts] of [...tally.perClass.entries()].sort((a, b) => a[0] - b[0])) {
    total.scored += counts.scored;
    total.hits += counts.hits;
    total.strictHits += counts.strictHits;
    perClass[classNames[classIndex] ?? `class ${classIndex}`] = rates(counts);
  }
  return { ...rates(total), method: tally.method, tolerancePx: pointingGameTolerancePx(tally.size), imageSize: tally.size, perClass };
}
