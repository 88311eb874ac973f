import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { createGradCamExplainer, type GradCamExplainer } from './grad-cam';
import { GRAD_CAM_OVERLAY_ALPHA, createGradCamTally, ensembleGradCam, gradCamOverlayPng, surveyGradCams, tallyPointingGameRate, type GradCamImages, type GradCamPick } from './grad-cam-survey';
import { pointingGame } from './localization';
import { pointingGameReport, pointingGameTolerancePx } from './pointing-game-report';
import { createSeededRandom } from './metrics';
import { renderGradCamOverlay } from './rendering';

const SIZE = 8;
const CLASSES = 4;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function model(seed: number): tfl.LayersModel {
  const init = (offset: number) => tfl.initializers.glorotUniform({ seed: seed * 10 + offset });
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: init(2) }),
    ],
  });
}

function images(count: number, seed: number): Uint8Array {
  const random = createSeededRandom(seed);
  return Uint8Array.from({ length: count * SIZE * SIZE }, () => Math.floor(random() * 256));
}

const imageAt = (pixels: Uint8Array, index: number) => pixels.subarray(index * SIZE * SIZE, (index + 1) * SIZE * SIZE);

describe('ensembleGradCam', () => {
  it('is the model’s own map for one model', () => {
    const explainer = createGradCamExplainer(model(1));
    const pixels = imageAt(images(1, 3), 0);
    const own = explainer.explain(pixels, SIZE);
    const ensemble = ensembleGradCam([explainer], pixels, SIZE);
    expect(ensemble.classIndex).toBe(own.classIndex);
    expect(Array.from(ensemble.heatmap)).toEqual(Array.from(own.heatmap));
    expect(ensemble.probabilities).toEqual(own.probabilities);
    expect(() => ensembleGradCam([], pixels, SIZE)).toThrow(RangeError);
  });

  it('averages the models’ maps for one class and rescales the mean to a maximum of 1', () => {
    const explainers = [createGradCamExplainer(model(1)), createGradCamExplainer(model(2))];
    const pixels = imageAt(images(1, 4), 0);
    for (let classIndex = 0; classIndex < CLASSES; classIndex += 1) {
      const maps = explainers.map((explainer) => explainer.explain(pixels, SIZE, classIndex).heatmap);
      const mean = maps[0]!.map((value, p) => (value + maps[1]![p]!) / 2);
      const peak = Math.max(...mean);
      const ensemble = ensembleGradCam(explainers, pixels, SIZE, classIndex);
      expect(ensemble.classIndex).toBe(classIndex);
      ensemble.heatmap.forEach((value, p) => expect(value).toBeCloseTo(peak > 0 ? mean[p]! / peak : 0, 6));
    }
  });

  it('explains the ensemble’s most probable class when none is asked for', () => {
    const explainers = [createGradCamExplainer(model(1)), createGradCamExplainer(model(2)), createGradCamExplainer(model(5))];
    const pixels = imageAt(images(1, 9), 0);
    const probabilities = explainers.map((explainer) => explainer.explain(pixels, SIZE).probabilities);
    const mean = probabilities[0]!.map((_, c) => probabilities.reduce((sum, row) => sum + row[c]!, 0) / probabilities.length);
    const ensemble = ensembleGradCam(explainers, pixels, SIZE);
    expect(ensemble.classIndex).toBe(mean.indexOf(Math.max(...mean)));
    ensemble.probabilities.forEach((value, c) => expect(value).toBeCloseTo(mean[c]!, 6));
    expect(Array.from(ensemble.heatmap)).toEqual(Array.from(ensembleGradCam(explainers, pixels, SIZE, ensemble.classIndex).heatmap));
  });
});

describe('gradCamOverlayPng', () => {
  it('renders with the one overlay opacity', async () => {
    const pixels = imageAt(images(1, 5), 0);
    const heatmap = Float32Array.from({ length: SIZE * SIZE }, (_, p) => p / (SIZE * SIZE));
    const png = await gradCamOverlayPng(pixels, SIZE, heatmap);
    expect(Buffer.from(png).equals(Buffer.from(await renderGradCamOverlay(pixels, SIZE, heatmap, { alpha: GRAD_CAM_OVERLAY_ALPHA })))).toBe(true);
    expect(Buffer.from(png).equals(Buffer.from(await renderGradCamOverlay(pixels, SIZE, heatmap)))).toBe(false);
  });
});

describe('surveyGradCams', () => {
  /** A fold whose labels are the model's own predictions for even images and a wrong class for odd ones. */
  function fold(explainer: GradCamExplainer, count: number, seed: number): GradCamImages {
    const pixels = images(count, seed);
    const labels = Array.from({ length: count }, (_, i) => {
      const predicted = explainer.explain(imageAt(pixels, i), SIZE).classIndex;
      return i % 2 === 0 ? predicted : (predicted + 1) % CLASSES;
    });
    return { pixels, labels, imageIds: labels.map((_, i) => `s${seed}-img${i}`), count, size: SIZE };
  }

  it('takes at most the wanted overlays per class across folds and scores correct lesion images', async () => {
    const explainer = createGradCamExplainer(model(3));
    const tally = createGradCamTally(2);
    const picks: GradCamPick[] = [];
    let expectedScored = 0;
    let expectedHits = 0;
    for (const seed of [11, 12]) {
      const batch = fold(explainer, 12, seed);
      // A blob mask on every third image.
      const masked = batch.imageIds.filter((_, i) => i % 3 === 0);
      const mask = Uint8Array.from({ length: SIZE * SIZE }, (_, p) => (p % SIZE < 3 && p < 3 * SIZE ? 255 : 0));
      const masks = { masks: new Uint8Array(masked.length * SIZE * SIZE), imageIds: masked, size: SIZE };
      masked.forEach((_, m) => masks.masks.set(mask, m * SIZE * SIZE));
      batch.imageIds.forEach((_, i) => {
        const label = batch.labels[i]!;
        const explanation = explainer.explain(imageAt(batch.pixels, i), SIZE);
        if (i % 3 === 0 && explanation.classIndex === label && label !== 0) {
          expectedScored += 1;
          if (pointingGame(explanation.heatmap, mask, SIZE, { tolerancePx: pointingGameTolerancePx(SIZE) }).hit) expectedHits += 1;
        }
      });
      const seen: number[] = [];
      await surveyGradCams({ explainer, images: batch, masks, tally, onPick: async (pick) => void picks.push(pick), onImage: (index) => seen.push(index) });
      // Explained: every masked image, and the others only while their class still wanted overlays.
      expect(seen.length).toBeGreaterThanOrEqual(masked.length);
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
    }
    const perClass = new Map<number, number>();
    for (const pick of picks) perClass.set(pick.label, (perClass.get(pick.label) ?? 0) + 1);
    for (const taken of perClass.values()) expect(taken).toBeLessThanOrEqual(2);
    expect([...tally.taken.entries()].sort()).toEqual([...perClass.entries()].sort());
    for (const pick of picks) {
      expect(pick.probability).toBeGreaterThan(0);
      expect(pick.png.subarray(1, 4)).toEqual(new Uint8Array([0x50, 0x4e, 0x47]));
    }
    // The fixture has correctly classified lesion images, so the pointing game really ran.
    expect(expectedScored).toBeGreaterThan(0);
    expect(tally.scored).toBe(expectedScored);
    expect(tally.hits).toBe(expectedHits);
    expect(tallyPointingGameRate(tally)).toBe(expectedScored > 0 ? expectedHits / expectedScored : null);
  });

  it('counts an overlay only once it is stored, and explains nothing once every class is full', async () => {
    const explainer = createGradCamExplainer(model(4));
    const batch = fold(explainer, 6, 21);
    const empty = { masks: new Uint8Array(0), imageIds: [], size: SIZE };
    const tally = createGradCamTally(1);
    await expect(surveyGradCams({ explainer, images: batch, masks: empty, tally, onPick: () => Promise.reject(new Error('store down')) })).rejects.toThrow('store down');
    expect(tally.taken.size).toBe(0);
    for (let c = 0; c < CLASSES; c += 1) tally.taken.set(c, 1);
    const seen: number[] = [];
    await surveyGradCams({ explainer, images: batch, masks: empty, tally, onPick: async () => undefined, onImage: (index) => seen.push(index) });
    expect(seen).toEqual([]);
    expect(tallyPointingGameRate(tally)).toBeNull();
  });

  it("takes the class and probability from the fold's recorded scores when given (test-time flip), the map from the image as it is", async () => {
    const explainer = createGradCamExplainer(model(6));
    const batch = fold(explainer, 4, 31);
    const empty = { masks: new Uint8Array(0), imageIds: [], size: SIZE };
    // Scores that disagree with the model's own forward pass: class (own + 2) with probability 0.7.
    const own = batch.imageIds.map((_, i) => explainer.explain(imageAt(batch.pixels, i), SIZE).classIndex);
    const scores = own.map((c) => Array.from({ length: CLASSES }, (_, k) => (k === (c + 2) % CLASSES ? 0.7 : 0.1)));
    const picks: GradCamPick[] = [];
    await surveyGradCams({ explainer, images: batch, masks: empty, tally: createGradCamTally(4), scores, onPick: async (pick) => void picks.push(pick) });
    expect(picks.map((pick) => pick.predictedClass)).toEqual(own.map((c) => (c + 2) % CLASSES));
    expect(picks.map((pick) => pick.probability)).toEqual([0.7, 0.7, 0.7, 0.7]);
    for (const pick of picks) {
      const map = explainer.explain(imageAt(batch.pixels, pick.index), SIZE, pick.predictedClass).heatmap;
      expect(Buffer.from(pick.png).equals(Buffer.from(await gradCamOverlayPng(imageAt(batch.pixels, pick.index), SIZE, map)))).toBe(true);
    }
    await expect(surveyGradCams({ explainer, images: batch, masks: empty, tally: createGradCamTally(1), scores: scores.slice(1), onPick: async () => undefined })).rejects.toThrow(/3 rows of class scores for 4 images/);
  });

  it("scores the explainer's method, names it in the report, and refuses an explainer of another method", async () => {
    const hiRes = createGradCamExplainer(model(3), { method: 'hires-cam' });
    const batch = fold(hiRes, 12, 41);
    const masked = batch.imageIds.filter((_, i) => i % 2 === 0);
    const mask = Uint8Array.from({ length: SIZE * SIZE }, (_, p) => (p % SIZE >= 4 ? 255 : 0));
    const masks = { masks: new Uint8Array(masked.length * SIZE * SIZE), imageIds: masked, size: SIZE };
    masked.forEach((_, m) => masks.masks.set(mask, m * SIZE * SIZE));
    const picks: GradCamPick[] = [];
    const tally = createGradCamTally(1, 'hires-cam');
    await surveyGradCams({ explainer: hiRes, images: batch, masks, tally, onPick: async (pick) => void picks.push(pick) });
    let expectedHits = 0;
    let expectedScored = 0;
    batch.imageIds.forEach((_, i) => {
      const explanation = hiRes.explain(imageAt(batch.pixels, i), SIZE);
      if (i % 2 !== 0 || explanation.classIndex !== batch.labels[i] || batch.labels[i] === 0) return;
      expectedScored += 1;
      if (pointingGame(explanation.heatmap, mask, SIZE, { tolerancePx: pointingGameTolerancePx(SIZE) }).hit) expectedHits += 1;
    });
    expect(expectedScored).toBeGreaterThan(0);
    expect([tally.scored, tally.hits]).toEqual([expectedScored, expectedHits]);
    expect(pointingGameReport(tally.pointing, ['normal', 'pneumonia', 'other_disease', 'covid'])).toMatchObject({ method: 'hires-cam', scored: expectedScored });
    // The overlays are HiResCAM maps too.
    for (const pick of picks) {
      const map = hiRes.explain(imageAt(batch.pixels, pick.index), SIZE, pick.predictedClass).heatmap;
      expect(Buffer.from(pick.png).equals(Buffer.from(await gradCamOverlayPng(imageAt(batch.pixels, pick.index), SIZE, map)))).toBe(true);
    }
    const gradCam = createGradCamExplainer(model(3));
    await expect(surveyGradCams({ explainer: gradCam, images: batch, masks, tally, onPick: async () => undefined })).rejects.toThrow(/tally scores hires-cam maps, the explainer makes grad-cam maps/);
    expect(createGradCamTally(1).pointing.method).toBe('grad-cam');
  });
});
