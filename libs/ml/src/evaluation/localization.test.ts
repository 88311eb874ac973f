import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { createGradCamExplainer } from './grad-cam';
import { heatmapPeak, pointingGame, pointingGameRate } from './localization';
import { createSeededRandom } from './metrics';
import { initBackendUnderTest } from '../test-support/backend-under-test';

describe('pointingGame', () => {
  const size = 4;
  // Lesion: the 2x2 block at columns 2–3, rows 2–3.
  const mask = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1]);

  it('hits when the maximum lies on the mask', () => {
    const heatmap = new Float32Array(16);
    heatmap[11] = 1; // x 3, y 2
    heatmap[0] = 0.9;
    expect(pointingGame(heatmap, mask, size)).toEqual({ hit: true, peak: { x: 3, y: 2 }, distancePx: 0 });
  });

  it('misses outside the mask unless within the tolerance', () => {
    const heatmap = new Float32Array(16);
    heatmap[0] = 1; // x 0, y 0: nearest mask pixel (2, 2) is √8 away
    const miss = pointingGame(heatmap, mask, size);
    expect(miss.hit).toBe(false);
    expect(miss.distancePx).toBeCloseTo(Math.SQRT2 * 2, 12);
    expect(pointingGame(heatmap, mask, size, { tolerancePx: 2.8 }).hit).toBe(false);
    expect(pointingGame(heatmap, mask, size, { tolerancePx: 2.9 }).hit).toBe(true);
  });

  it('takes the first maximum in row-major order among ties equally far from the border', () => {
    const heatmap = new Float32Array(16);
    heatmap[3] = 1;
    heatmap[15] = 1;
    expect(pointingGame(heatmap, mask, size).peak).toEqual({ x: 3, y: 0 });
  });

  it('takes the innermost pixel of a plateau that reaches the border, not its first one', () => {
    // An upsampled top-border cell of an 8 × 8 image: flat from the top edge down to its centre.
    const heatmap = new Float32Array(64);
    for (let y = 0; y <= 3; y++) heatmap[y * 8 + 3] = 1;
    heatmap[4 * 8 + 3] = 0.9;
    const lesion = new Uint8Array(64);
    for (const [x, y] of [[3, 3], [3, 4], [4, 3], [4, 4]] as const) lesion[y * 8 + x] = 1;
    expect(heatmapPeak(heatmap, 8)).toEqual({ x: 3, y: 3 });
    expect(pointingGame(heatmap, lesion, 8)).toEqual({ hit: true, peak: { x: 3, y: 3 }, distancePx: 0 });
    expect(heatmapPeak(new Float32Array(16).fill(0.25), 4)).toBeNull();
  });

  it('counts a flat map as pointing nowhere', () => {
    expect(pointingGame(new Float32Array(16), mask, size)).toEqual({ hit: false, peak: null, distancePx: Infinity });
    expect(pointingGame(new Float32Array(16).fill(0.5), mask, size, { tolerancePx: 10 }).hit).toBe(false);
  });

  it('rejects size mismatches, empty masks and negative tolerances', () => {
    expect(() => pointingGame(new Float32Array(15), mask, size)).toThrow(RangeError);
    expect(() => pointingGame(new Float32Array(16), new Uint8Array(9), size)).toThrow(RangeError);
    expect(() => pointingGame(new Float32Array(16), new Uint8Array(16), size)).toThrow(/empty/);
    expect(() => pointingGame(new Float32Array(16), mask, size, { tolerancePx: -1 })).toThrow(RangeError);
  });

  it('rates hits over trials', () => {
    expect(pointingGameRate([{ hit: true }, { hit: false }, { hit: true }, { hit: true }])).toBe(0.75);
    expect(() => pointingGameRate([])).toThrow(RangeError);
  });
});

const SIZE = 32;

interface Sample {
  pixels: Uint8Array;
  mask: Uint8Array;
  label: 0 | 1;
}

/**
 * Dark noisy background (like the film around a chest, and equal to the zero padding of 'same'
 * convolutions, so the borders carry no features); class 1 adds one bright Gaussian blob at a random
 * position, and its mask is the disc where the blob is at least a third of its peak.
 */
function syntheticSample(random: () => number, label: 0 | 1): Sample {
  const pixels = new Uint8Array(SIZE * SIZE);
  const mask = new Uint8Array(SIZE * SIZE);
  const cx = 6 + random() * (SIZE - 12);
  const cy = 6 + random() * (SIZE - 12);
  const sigma = 2.5 + random() * 1;
  const background = 15 + random() * 20;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const i = y * SIZE + x;
      // Sum of uniforms: cheap, roughly Gaussian noise with std ≈ 18.
      const noise = (random() + random() + random() - 1.5) * 24;
      let value = background + noise;
      if (label === 1) {
        const blob = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma * sigma));
        value += 140 * blob;
        if (blob >= 1 / 3) mask[i] = 1;
      }
      pixels[i] = Math.max(0, Math.min(255, Math.round(value)));
    }
  }
  return { pixels, mask, label };
}

function dataset(seed: number, count: number): Sample[] {
  const random = createSeededRandom(seed);
  return Array.from({ length: count }, (_, i) => syntheticSample(random, (i % 2) as 0 | 1));
}

describe('Grad-CAM localises a learnt lesion', () => {
  beforeAll(async () => {
    // The core's wasm backend with its conv gradient kernels: the cpu backend's filter gradient
    // is far too slow to train even this net within the test budget.
    await initBackendUnderTest();
  });

  it('points at the blob in ≥ 90% of correctly classified lesion images', async () => {
    const train = dataset(1, 400);
    const test = dataset(2, 120);
    const init = (seed: number) => tfl.initializers.heNormal({ seed });
    const model = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }),
        tfl.layers.maxPooling2d({ poolSize: 2 }),
        tfl.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(2), name: 'last_conv' }),
        tfl.layers.globalMaxPooling2d({}),
        // With two softmax classes only y1 − y0 is learnt; a zero-initialised last layer gets exactly
        // opposite updates for both logits (the cross-entropy gradient sums to 0 over classes, and
        // Adam keeps that symmetry), so y1 = −y0 + const and the evidence shows up in y1 itself.
        // From a random start the net may instead encode "lesion" as a falling y0, and Grad-CAM of
        // y1 then rightly shows nothing.
        tfl.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: 'zeros' }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
    const x = tf.tidy(() => tf.div(tf.tensor4d(Uint8Array.from(train.flatMap((s) => [...s.pixels])), [train.length, SIZE, SIZE, 1], 'float32'), 255));
    const y = tf.tensor1d(train.map((s) => s.label), 'float32');
    const started = Date.now();
    await model.fit(x, y, { epochs: 12, batchSize: 32, shuffle: false, verbose: 0 });
    const trainSeconds = (Date.now() - started) / 1000;
    tf.dispose([x, y]);

    const explainer = createGradCamExplainer(model);
    expect(explainer.layerName).toBe('last_conv');
    let correct = 0;
    const trials = [];
    for (const sample of test) {
      const result = explainer.explain(sample.pixels, SIZE, 1);
      const predicted = (result.probabilities[1] as number) > (result.probabilities[0] as number) ? 1 : 0;
      if (predicted === sample.label) {
        correct++;
        if (sample.label === 1) trials.push(pointingGame(result.heatmap, sample.mask, SIZE));
      }
    }
    const accuracy = correct / test.length;
    const rate = pointingGameRate(trials);
    console.info(`trained in ${trainSeconds.toFixed(1)} s; test accuracy ${accuracy}; pointing game ${rate} over ${trials.length}`);
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
    expect(trials.length).toBeGreaterThanOrEqual(50);
    expect(rate).toBeGreaterThanOrEqual(0.9);
  }, 60_000);
});
