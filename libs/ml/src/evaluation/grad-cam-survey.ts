/**
 * Grad-CAM as detl applies it to many images: the (ensemble) map of one image with its overlay PNG,
 * and the survey of a fold's held-out images that picks a few per class for overlays and scores
 * the maps against lesion masks. The experiment's Grad-CAM stage and `detl predict` both use it, so
 * the maps and pictures they produce are made the same way.
 */
import type { GradCamMethod } from '@detl/config';
import type { GradCamExplainer } from './grad-cam';
import { createPointingGameTally, scorePointingGame, type PointingGameTally } from './pointing-game-report';
import { renderGradCamOverlay } from './rendering';

/** Opacity of the colour map where the heat is 1, in every overlay detl writes. */
export const GRAD_CAM_OVERLAY_ALPHA = 0.45;

/** One image explained by one model or an ensemble. */
export interface EnsembleGradCam {
  /** size × size in [0, 1], maximum 1 unless no model found evidence (then all zeros). */
  heatmap: Float32Array;
  /** The explained class. */
  classIndex: number;
  /** Class probabilities, averaged over the models. */
  probabilities: number[];
}

function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

/**
 * Grad-CAM of one image for one model or an ensemble. With one model it is that model's map; with
 * several, each model's map for the same class, averaged and scaled back to a maximum of 1 (the
 * scale every single map has). Without `classIndex` the class is the (ensemble's) most probable one.
 *
 * @param pixels - size × size grey values 0–255, row-major
 */
export function ensembleGradCam(explainers: readonly GradCamExplainer[], pixels: Uint8Array, size: number, classIndex?: number): EnsembleGradCam {
  const [first] = explainers;
  if (first === undefined) throw new RangeError('Grad-CAM of an ensemble needs at least one model');
  if (explainers.length === 1) return first.explain(pixels, size, classIndex);
  let explained = explainers.map((explainer) => explainer.explain(pixels, size, classIndex));
  const probabilities = (explained[0] as { probabilities: number[] }).probabilities.map(
    (_, c) => explained.reduce((sum, one) => sum + (one.probabilities[c] ?? 0), 0) / explained.length,
  );
  const chosen = classIndex ?? argmax(probabilities);
  // Without a class each model explained its own favourite; those that disagree with the ensemble
  // explain the ensemble's class again.
  explained = explained.map((one, m) => (one.classIndex === chosen ? one : (explainers[m] as GradCamExplainer).explain(pixels, size, chosen)));
  const heatmap = new Float32Array(size * size);
  for (const { heatmap: map } of explained) for (let p = 0; p < heatmap.length; p += 1) heatmap[p] = (heatmap[p] as number) + (map[p] as number) / explained.length;
  const peak = heatmap.reduce((max, value) => Math.max(max, value), 0);
  if (peak > 0) for (let p = 0; p < heatmap.length; p += 1) heatmap[p] = (heatmap[p] as number) / peak;
  return { heatmap, classIndex: chosen, probabilities };
}

/** The overlay PNG of a Grad-CAM map, as every detl overlay looks ({@link GRAD_CAM_OVERLAY_ALPHA}). */
export function gradCamOverlayPng(pixels: Uint8Array, size: number, heatmap: ArrayLike<number>): Promise<Uint8Array> {
  return renderGradCamOverlay(pixels, size, heatmap, { alpha: GRAD_CAM_OVERLAY_ALPHA });
}

/** Held-out images of one fold, as the data library loads them. */
export interface GradCamImages {
  /** count × size × size grey pixels. */
  pixels: Uint8Array;
  labels: ArrayLike<number>;
  imageIds: readonly string[];
  count: number;
  size: number;
}

/** Lesion masks of some of those images (0 / non-zero pixels, same layout), by image id. */
export interface GradCamMasks {
  masks: Uint8Array;
  imageIds: readonly string[];
  size: number;
}

/** An image the survey picked for an overlay. */
export interface GradCamPick {
  /** Position in the fold's images. */
  index: number;
  imageId: string;
  /** True class index. */
  label: number;
  /** The class the model predicted (and the map explains). */
  predictedClass: number;
  /** The model's probability of the predicted class. */
  probability: number;
  /** The overlay PNG. */
  png: Uint8Array;
}

/**
 * What a survey has done so far, across folds: overlays taken per class, and the pointing game's
 * hits (within Zhang et al.'s tolerance, see `pointing-game-report`) among the correctly
 * classified lesion images, in all and per class. Made by {@link createGradCamTally}.
 */
export interface GradCamTally {
  readonly imagesPerClass: number;
  readonly taken: Map<number, number>;
  hits: number;
  scored: number;
  /** The same trials per class, with exact (zero-tolerance) hits too: `pointingGameReport` reads it. */
  readonly pointing: PointingGameTally;
}

/**
 * An empty tally wanting `imagesPerClass` overlays of every class, for maps made with `method`
 * (default `grad-cam`; {@link surveyGradCams} refuses an explainer of another method, so the
 * pointing game's report names the method that made its maps).
 */
export function createGradCamTally(imagesPerClass: number, method: GradCamMethod = 'grad-cam'): GradCamTally {
  return { imagesPerClass, taken: new Map(), hits: 0, scored: 0, pointing: createPointingGameTally(method) };
}

/** Share of scored images whose map peaks inside the lesion; null when no image could be scored. */
export function tallyPointingGameRate(tally: GradCamTally): number | null {
  return tally.scored > 0 ? tally.hits / tally.scored : null;
}

/** Class index whose images have no lesion to point at (normal), so the pointing game skips them. */
const NO_LESION_CLASS = 0;

function maskLookup(masks: GradCamMasks): (imageId: string) => Uint8Array | null {
  const area = masks.size * masks.size;
  const positions = new Map(masks.imageIds.map((imageId, index) => [imageId, index]));
  return (imageId) => {
    const index = positions.get(imageId);
    return index === undefined ? null : masks.masks.subarray(index * area, (index + 1) * area);
  };
}

/**
 * Surveys one fold's held-out images with the model that did not train on them (its explainer's
 * method must be the tally's): while the tally
 * still wants overlays of an image's class, the image is explained and its overlay handed to
 * `onPick`; every image with a lesion mask is explained too, and when the model classified it
 * correctly its map is scored with the pointing game. Images needing neither are not explained.
 *
 * @param scores - the class probabilities the fold's evaluation gave each image (in `images`
 *   order), e.g. flip-averaged with `evaluation.testTimeFlip`: the predicted class, the class the map
 *   explains and the pick's probability then come from them, so the overlays agree with the fold's
 *   confusion matrix; the map itself is always of the image as it is. Default: the explainer's own
 *   forward pass.
 * @param onPick - stores the overlay; awaited before the tally counts it, so a failed store takes nothing
 * @param onImage - called after each explained image (a heartbeat)
 */
export async function surveyGradCams(options: {
  explainer: GradCamExplainer;
  images: GradCamImages;
  masks: GradCamMasks;
  tally: GradCamTally;
  scores?: readonly (readonly number[])[];
  onPick: (pick: GradCamPick) => Promise<void>;
  onImage?: (index: number) => void;
}): Promise<void> {
  if (options.scores && options.scores.length !== options.images.count) {
    throw new RangeError(`${options.scores.length} rows of class scores for ${options.images.count} images`);
  }
  const { explainer, images, tally } = options;
  if (explainer.method !== tally.pointing.method) {
    throw new Error(`the tally scores ${tally.pointing.method} maps, the explainer makes ${explainer.method} maps`);
  }
  const maskOf = maskLookup(options.masks);
  const pixelsPerImage = images.size * images.size;
  for (let index = 0; index < images.count; index += 1) {
    const label = images.labels[index] ?? -1;
    const imageId = images.imageIds[index] ?? `image-${index}`;
    const mask = maskOf(imageId);
    const needOverlay = (tally.taken.get(label) ?? 0) < tally.imagesPerClass;
    if (!needOverlay && !mask) continue;
    const pixels = images.pixels.subarray(index * pixelsPerImage, (index + 1) * pixelsPerImage);
    const scored = options.scores?.[index];
    const explanation = ensembleGradCam([explainer], pixels, images.size, scored ? argmax(scored) : undefined);
    const probabilities = scored ?? explanation.probabilities;
    if (mask && explanation.classIndex === label && label !== NO_LESION_CLASS) {
      tally.scored += 1;
      if (scorePointingGame(tally.pointing, explanation.heatmap, mask, images.size, label).hit) tally.hits += 1;
    }
    if (needOverlay) {
      const png = await gradCamOverlayPng(pixels, images.size, explanation.heatmap);
      await options.onPick({
        index,
        imageId,
        label,
        predictedClass: explanation.classIndex,
        probability: probabilities[explanation.classIndex] ?? 0,
        png,
      });
      tally.taken.set(label, (tally.taken.get(label) ?? 0) + 1);
    }
    options.onImage?.(index);
  }
}
