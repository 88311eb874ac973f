/**
 * Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", 2016): a saliency
 * map "hits" when its maximum falls on the annotated object. It checks that Grad-CAM looks where the
 * lesion is, which the paper only shows by example.
 */

/**
 * The pixel where a size × size map is largest, or null for a flat map (maximum = minimum).
 *
 * Among pixels that share the maximum, the one farthest from the image border is taken (then the
 * first in row-major order). A bilinearly upsampled Grad-CAM map with half-pixel centres holds each
 * border cell's value constant over the cell's outer half, out to the image edge; a plain
 * first-in-row-major rule put the peak of a top or left border cell on the image edge, 3.5 px from
 * the cell's centre at 8 × 8 → 64 px (4.9 px for a corner cell: beyond the pointing game's 4.3 px
 * tolerance), while a bottom or right border cell peaked 0.5 px from its centre. The innermost
 * pixel of such a plateau is the one beside the cell's centre, on every side.
 */
export function heatmapPeak(heatmap: ArrayLike<number>, size: number): { x: number; y: number } | null {
  let max = heatmap[0] as number;
  let min = max;
  for (let i = 1; i < heatmap.length; i++) {
    const v = heatmap[i] as number;
    if (v > max) max = v;
    if (v < min) min = v;
  }
  if (max === min) return null;
  let best = -1;
  let bestInset = -1;
  const rows = Math.ceil(heatmap.length / size);
  for (let i = 0; i < heatmap.length; i++) {
    if (heatmap[i] !== max) continue;
    const x = i % size;
    const y = Math.floor(i / size);
    const inset = Math.min(x, y, size - 1 - x, rows - 1 - y);
    if (inset > bestInset) {
      bestInset = inset;
      best = i;
    }
  }
  return { x: best % size, y: Math.floor(best / size) };
}

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
  /** Heatmap maximum ({@link heatmapPeak}: a tie goes to the pixel farthest from the border), or null for a flat map. */
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

  const peak = heatmapPeak(heatmap, size);
  if (peak === null) return { hit: false, peak: null, distancePx: Number.POSITIVE_INFINITY };

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
