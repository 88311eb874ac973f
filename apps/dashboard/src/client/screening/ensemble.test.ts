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
