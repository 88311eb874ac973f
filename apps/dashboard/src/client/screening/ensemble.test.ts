import { GRAD_CAM_METHODS } from '@detl/config';
import { buildModel, createGradCamExplainer, ENSEMBLE_OUTPUT_LAYER, initBackend } from '@detl/ml';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTf, screenImage, type LoadedModel } from './ensemble';

// The page's screening with a run's `evaluation.testTimeFlip`: each fold's probabilities are the
// mean over the image and its left-right mirror; Grad-CAM stays on the image as it is. Tiny
// in-memory nets on tfjs' CPU backend, as in the browser.

const SIZE = 8;
let models: LoadedModel[];

beforeAll(async () => {
  await initTf();
  models = [3, 4].map((seed, fold) => ({
    fold,
    model: tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 2, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed }) }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 4, kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 10 }) }),
      ],
    }),
  }));
});

afterAll(() => {
  for (const { model } of models) model.dispose();
});

describe('screenImage with test-time flip', () => {
  it("averages each fold's softmax over the image and its mirror, and explains the image as it is", async () => {
    const image = Uint8Array.from({ length: SIZE * SIZE }, (_, p) => (p % SIZE < 3 ? 220 : 20) + ((p * 7) % 13));
    const mirror = image.map((_, p) => image[p - (p % SIZE) + SIZE - 1 - (p % SIZE)] as number);
    const plain = await screenImage(models, image, SIZE, 255, { testTimeFlip: false });
    const ofMirror = await screenImage(models, mirror, SIZE, 255, { testTimeFlip: false });
    const flipped = await screenImage(models, image, SIZE, 255, { testTimeFlip: true });
    flipped.perFold.forEach(({ probabilities }, f) =>
      probabilities.forEach((p, c) => expect(p).toBeCloseTo(((plain.perFold[f]?.probabilities[c] as number) + (ofMirror.perFold[f]?.probabilities[c] as number)) / 2, 6)),
    );
    const ensemble = plain.probabilities.map((_, c) => flipped.perFold.reduce((sum, fold) => sum + (fold.probabilities[c] as number), 0) / flipped.perFold.length);
    flipped.probabilities.forEach((p, c) => expect(p).toBeCloseTo(ensemble[c] as number, 6));
    expect(Math.max(...plain.probabilities.map((p, c) => Math.abs(p - (ofMirror.probabilities[c] as number))))).toBeGreaterThan(1e-5);
    // Same class here, so the same map: Grad-CAM never sees the mirror.
    expect(flipped.predicted).toBe(plain.predicted);
    expect(Array.from(flipped.heatmap)).toEqual(Array.from(plain.heatmap));
    expect(tf.memory().numTensors).toBeLessThan(100);
  });
});

// A run trained with `model.members` > 1 has fold models that are ensembles of their own: members
// side by side on one input, the output the mean of their logits. The page explains them with libs/ml's
// explainer (@detl/ml/browser); here its probabilities (its own fold scoring) are held to libs/ml's,
// and its map to the explainer's for the run's method and the ensemble's class, for every method.
describe('screenImage on ensemble fold models (model.members > 1)', () => {
  const ENSEMBLE_SIZE = 16;
  const MEMBERS = [2, 3];
  let ensembles: LoadedModel[];

  beforeAll(async () => {
    await initBackend('cpu');
    await initTf();
    ensembles = MEMBERS.map((members, fold) => ({
      fold,
      model: buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: ENSEMBLE_SIZE, channels: 1, numClasses: 4, seed: 5 + fold, members }),
    }));
  });

  afterAll(() => {
    for (const { model } of ensembles) model.dispose();
  });

  it.each(GRAD_CAM_METHODS)("gives libs/ml's probabilities and %s map for each fold's ensemble", async (method) => {
    const image = Uint8Array.from({ length: ENSEMBLE_SIZE ** 2 }, (_, p) =>
      ((p % ENSEMBLE_SIZE) - 9) ** 2 + (Math.floor(p / ENSEMBLE_SIZE) - 5) ** 2 < 12 ? 230 : 40 + ((p * 13) % 29),
    );
    const tensors = tf.memory().numTensors;
    for (const [f, entry] of ensembles.entries()) {
      // The fold model is an ensemble (libs/ml's averaging layer over its members).
      expect(entry.model.outputs[0]?.sourceLayer.name).toBe(ENSEMBLE_OUTPUT_LAYER);
      const screened = await screenImage([entry], image, ENSEMBLE_SIZE, 255, { testTimeFlip: false, gradCamMethod: method });
      const explainer = createGradCamExplainer(entry.model, { method });
      const reference = explainer.explain(image, ENSEMBLE_SIZE, screened.predicted);
      explainer.dispose();
      expect(explainer.layerName.split('+')).toHaveLength(MEMBERS[f] as number);
      screened.probabilities.forEach((p, c) => expect(p).toBeCloseTo(reference.probabilities[c] as number, 6));
      expect(Math.max(...reference.heatmap)).toBe(1);
      // One fold: its map is the explainer's for the method and class the page was given, unchanged.
      expect(Array.from(screened.heatmap)).toEqual(Array.from(reference.heatmap));
    }
    expect(tf.memory().numTensors).toBe(tensors);
  });
});

describe('screenImage input scale', () => {
  it("refuses a pixel scale other than the 255 libs/ml's explainer feeds", async () => {
    const image = new Uint8Array(SIZE * SIZE).fill(100);
    await expect(screenImage(models, image, SIZE, 1, { testTimeFlip: false })).rejects.toThrow(/pixels ÷ 1; .* pixels ÷ 255 only/);
  });
});
