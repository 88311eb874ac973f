/**
 * Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", 2016): a saliency
 * map "hits" when its maximum falls on the annotated object. It checks that Grad-CAM looks where the
 * lesion is, which the paper only shows by example.
 */

/** Options of {@link pointingGame}. */
export interface PointingGameOptions {
  /**
   * Euclidean distance in pixels (between pixel centres) by which the peak may miss the mask and
   * still count as a hit. Default 0: the peak must lie on a mask pixel. Zhang et al. use 15 px at
   * ~224 px, to forgive the coarse resolution of the maps; scale it with the image size.
   */
  tolerancePx?: number;
}

/** One pointing-game trial. */
export interface PointingGameResult {
  hit: boolean;
  /** Heatmap maximum (first in row-major order on ties), or null for a flat map. */
  peak: { x: number; y: number } | null;
  /** Distance from the peak to the nearest mask pixel: 0 inside, Infinity for a flat map. */
  distancePx: number;
}

/**
 * Scores one heatmap against a lesion mask.
 *
 * A flat heatmap (maximum = minimum, e.g. the all-zero Grad-CAM map of a class with no positive
 * evidence) points nowhere and counts as a miss.
 *
 * @param heatmap - size × size, row-major
 * @param mask - size × size, row-major; non-zero marks the lesion
 * @throws RangeError when the sizes disagree or the mask is empty (the game needs something to hit)
 */
export function pointingGame(
  heatmap: ArrayLike<number>,
  mask: Uint8Array,
  size: number,
  options: PointingGameOptions = {},
): PointingGameResult {
  const tolerance = options.tolerancePx ?? 0;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  if (heatmap.length !== size * size) throw new RangeError(`heatmap has ${heatmap.length} values, expected ${size * size}`);
  if (mask.length !== size * size) throw new RangeError(`mask has ${mask.length} values, expected ${size * size}`);
  if (!(tolerance >= 0)) throw new RangeError(`tolerancePx must be ≥ 0, got ${tolerance}`);
  if (!mask.some((v) => v !== 0)) throw new RangeError('mask is empty: nothing to point at');

  let best = 0;
  let min = heatmap[0] as number;
  for (let i = 1; i < heatmap.length; i++) {
    const v = heatmap[i] as number;
    if (v > (heatmap[best] as number)) best = i;
    if (v < min) min = v;
  }
  if ((heatmap[best] as number) === min) return { hit: false, peak: null, distancePx: Number.POSITIVE_INFINITY };

  const peak = { x: best % size, y: Math.floor(best / size) };
  let nearestSquared = Number.POSITIVE_INFINITY;
  for (let i = 0; i < mask.length && nearestSquared > 0; i++) {
    if (mask[i] === 0) continue;
    const dx = (i % size) - peak.x;
    const dy = Math.floor(i / size) - peak.y;
    nearestSquared = Math.min(nearestSquared, dx * dx + dy * dy);
  }
  const distancePx = Math.sqrt(nearestSquared);
  return { hit: distancePx <= tolerance, peak, distancePx };
}

/**
 * Fraction of hits.
 *
 * @throws RangeError for no results: a rate of nothing is a bug upstream, not 0 or 1
 */
export function pointingGameRate(results: readonly { hit: boolean }[]): number {
  if (results.length === 0) throw new RangeError('pointing-game rate of no results');
  return results.filter((r) => r.hit).length / results.length;
}
