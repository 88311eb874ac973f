import * as tf from '@tensorflow/tfjs-core';
import { parseExperimentConfig } from '@detl/config';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildModel } from './models';
import { SeededRandom } from './random';
import { quadrantImages, testTrainingStage } from './test-data';
import { augmentBatch, createOptimizer, evaluateModel, imagesToTensor, learningRateAt, predictProbabilities, trainModel, type TrainingStage } from './train';
import { initBackendUnderTest } from '../test-support/backend-under-test';

const stage = testTrainingStage({ epochs: 4 });

const tiny = (seed = 1) => buildModel({ architecture: 'small-vgg', widthMultiplier: 0.5, imageSize: 16, channels: 1, numClasses: 4, seed });

describe('trainModel', () => {
  beforeAll(async () => {
    await initBackendUnderTest();
  });

  it('learns a separable task, keeps the best validation weights and leaks no tensors', async () => {
    const train = quadrantImages(128, 16, 4, 1);
    const validation = quadrantImages(48, 16, 4, 2);
    const model = tiny();
    const counts: number[] = [];
    const result = await trainModel({
      model,
      train,
      validation,
      stage: { ...stage, epochs: 5 },
      seed: 3,
      onEpochEnd: () => {
        counts.push(tf.memory().numTensors);
      },
    });
    expect(result.epochs.map((m) => m.epoch)).toEqual([1, 2, 3, 4, 5]);
    // The optimizer creates its moments during epoch 1; from then on nothing may accumulate.
    expect(new Set(counts.slice(1)).size).toBe(1);
    const accuracies = result.epochs.map((m) => m.validationAccuracy as number);
    expect(Math.max(...accuracies)).toBeGreaterThan(0.9);
    expect(result.best?.validationAccuracy).toBe(Math.max(...accuracies));
    expect(result.best?.epoch).toBe(accuracies.indexOf(Math.max(...accuracies)) + 1);
    // restoreBest: the model now scores the best epoch's accuracy again.
    expect(evaluateModel(model, validation).accuracy).toBeCloseTo(result.best?.validationAccuracy as number, 6);
    expect(result.epochs[0]?.learningRate).toBe(stage.learningRate);
    expect(result.epochs[4]?.learningRate).toBeLessThan(stage.learningRate / 2);
    expect(result.epochs.every((m) => m.imagesPerSecond > 0 && m.durationMs > 0)).toBe(true);
    const probabilities = predictProbabilities(model, validation, 7);
    expect(probabilities).toHaveLength(48);
    expect(probabilities.filter((row, i) => row.indexOf(Math.max(...row)) === validation.labels[i]).length / 48).toBeCloseTo(result.best?.validationAccuracy as number, 6);
    result.optimizer.dispose();
    model.dispose();
  }, 60_000);

  it('is reproducible from the seed, and a resumed run ends with the same weights', async () => {
    const train = quadrantImages(32, 16, 4, 5);
    const three = { ...stage, epochs: 3 };
    const firstWeights = (model: ReturnType<typeof tiny>) => Array.from((model.getWeights()[0] as tf.Tensor).dataSync());

    const straight = async () => {
      const model = tiny(9);
      const losses: number[] = [];
      const result = await trainModel({ model, train, stage: three, seed: 4, onEpochEnd: (m) => void losses.push(m.trainLoss) });
      const weights = firstWeights(model);
      result.optimizer.dispose();
      model.dispose();
      return { losses, weights };
    };
    const once = await straight();
    const again = await straight();
    expect(again.losses).toEqual(once.losses);
    expect(again.weights).toEqual(once.weights);

    // Interrupt after epoch 1 (as a killed worker would), then resume from there with the same optimizer.
    const model = tiny(9);
    const optimizer = createOptimizer(three);
    const controller = new AbortController();
    const losses: number[] = [];
    await expect(
      trainModel({ model, train, stage: three, seed: 4, optimizer, signal: controller.signal, onEpochEnd: (m) => { losses.push(m.trainLoss); controller.abort(); } }),
    ).rejects.toMatchObject({ name: 'AbortError' });
    await trainModel({ model, train, stage: three, seed: 4, optimizer, startEpoch: 1, onEpochEnd: (m) => void losses.push(m.trainLoss) });
    expect(losses).toEqual(once.losses);
    expect(firstWeights(model)).toEqual(once.weights);
    optimizer.dispose();
    model.dispose();
  }, 60_000);

  it('feeds greyscale images to a 3-channel (ImageNet-style) model', async () => {
    const model = buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: 16, channels: 3, numClasses: 4, seed: 1 });
    const images = quadrantImages(8, 16, 4, 1);
    const x = imagesToTensor(images, [2], 3);
    expect(x.shape).toEqual([1, 16, 16, 3]);
    const [r, g, b] = tf.split(x, 3, 3).map((t) => Array.from(t.dataSync()));
    expect(g).toEqual(r);
    expect(b).toEqual(r);
    expect(Math.max(...(r as number[]))).toBeLessThanOrEqual(1);
    expect(r?.[0]).toBeCloseTo((images.pixels[2 * 256] as number) / 255, 6);
    const result = await trainModel({ model, train: images, stage: { ...stage, epochs: 1 }, seed: 1 });
    expect(result.epochs[0]?.trainLoss).toBeGreaterThan(0);
    tf.dispose(x);
    result.optimizer.dispose();
    model.dispose();
  });

  it('aborts between batches', async () => {
    const controller = new AbortController();
    const model = tiny();
    const promise = trainModel({
      model,
      train: quadrantImages(64, 16, 4, 1),
      stage,
      seed: 1,
      signal: controller.signal,
      onBatchEnd: (b) => {
        if (b.batch === 2) controller.abort();
      },
    });
    await expect(promise).rejects.toMatchObject({ name: 'AbortError' });
    model.dispose();
  });

  it('rejects data that does not fit the model', async () => {
    const model = tiny();
    await expect(trainModel({ model, train: quadrantImages(8, 32, 4, 1), stage, seed: 1 })).rejects.toThrow(/32x32 px, the model takes 16x16/);
    const bad = quadrantImages(8, 16, 4, 1);
    bad.labels[3] = 7;
    await expect(trainModel({ model, train: bad, stage, seed: 1 })).rejects.toThrow(/label 7 of image 3 is outside 0…3/);
    await expect(trainModel({ model, train: quadrantImages(3, 16, 3, 1), stage, seed: 1 })).rejects.toThrow(/3 images for 4 classes/);
    model.dispose();
  });
});

describe('configuration compatibility', () => {
  it('takes the experiment config stages as they are', () => {
    const config = parseExperimentConfig({});
    // Compile-time: a config stage is a TrainingStage; run-time: the defaults are the paper's.
    const pretrain: TrainingStage = config.pretrain;
    const fineTune: TrainingStage = config.fineTune;
    expect([pretrain.optimizer, pretrain.learningRate, pretrain.schedule]).toEqual(['adam', 1e-3, 'cosine']);
    expect([fineTune.optimizer, fineTune.learningRate, fineTune.momentum]).toEqual(['sgd', 1e-4, 0.9]);
  });
});

describe('schedule and augmentation', () => {
  beforeAll(async () => {
    await initBackendUnderTest();
  });

  it('anneals the learning rate on a cosine from the peak to zero', () => {
    const s = { learningRate: 1e-3, schedule: 'cosine' as const };
    expect(learningRateAt(s, 0, 100)).toBe(1e-3);
    expect(learningRateAt(s, 50, 100)).toBeCloseTo(5e-4, 12);
    expect(learningRateAt(s, 100, 100)).toBeCloseTo(0, 12);
    expect(learningRateAt({ ...s, schedule: 'constant' }, 70, 100)).toBe(1e-3);
  });

  it('mirrors exactly and is seeded', () => {
    const x = tf.tensor4d(Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => i % 13), [4, 8, 8, 1]);
    const flipOnly = { rotationDegrees: 0, scale: 0, horizontalFlip: true };
    const out = augmentBatch(x, new SeededRandom(1), flipOnly);
    const mirrored = tf.reverse(x, 2);
    const identical = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number;
    let flips = 0;
    for (let i = 0; i < 4; i += 1) {
      const o = tf.slice(out, [i, 0, 0, 0], [1, 8, 8, 1]);
      const isFlipped = identical(o, tf.slice(mirrored, [i, 0, 0, 0], [1, 8, 8, 1])) < 1e-5;
      const isSame = identical(o, tf.slice(x, [i, 0, 0, 0], [1, 8, 8, 1])) < 1e-5;
      expect(isFlipped || isSame).toBe(true);
      if (isFlipped) flips += 1;
    }
    expect(flips).toBeGreaterThan(0);
    const full = { rotationDegrees: 20, scale: 0.2, horizontalFlip: true };
    const a = augmentBatch(x, new SeededRandom(7), full);
    const b = augmentBatch(x, new SeededRandom(7), full);
    const c = augmentBatch(x, new SeededRandom(8), full);
    expect(identical(a, b)).toBe(0);
    expect(identical(a, c)).toBeGreaterThan(0.1);
  });

  it('shifts by whole pixels without resampling, edges replicated, within ±translatePixels', () => {
    const size = 8;
    const x = tf.tensor4d(Float32Array.from({ length: 16 * size * size }, (_, i) => (i * 7919) % 101), [16, size, size, 1]);
    const shiftOnly = { rotationDegrees: 0, scale: 0, horizontalFlip: false, translatePixels: 2 };
    const out = augmentBatch(x, new SeededRandom(3), shiftOnly);
    const input = x.arraySync();
    const output = out.arraySync();
    const offsets = new Set<string>();
    for (let i = 0; i < 16; i += 1) {
      // The shift that reproduces image i exactly: output(y, x) = input(clamp(y - dy), clamp(x - dx)).
      const clamp = (v: number) => Math.min(size - 1, Math.max(0, v));
      const matches = [-2, -1, 0, 1, 2].flatMap((dy) => [-2, -1, 0, 1, 2].map((dx) => ({ dx, dy }))).filter(({ dx, dy }) =>
        Array.from({ length: size * size }, (_, p) => [Math.floor(p / size), p % size] as const).every(
          ([row, col]) => Math.abs((output[i]?.[row]?.[col]?.[0] as number) - (input[i]?.[clamp(row - dy)]?.[clamp(col - dx)]?.[0] as number)) < 1e-4,
        ),
      );
      expect(matches.length).toBeGreaterThan(0);
      offsets.add(JSON.stringify(matches[0]));
    }
    expect(offsets.size).toBeGreaterThan(3);
    // Absent, no shift is drawn: the draws of every stage written before the option are unchanged.
    const before = { rotationDegrees: 5, scale: 0.05, horizontalFlip: true };
    const identical = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number;
    expect(identical(augmentBatch(x, new SeededRandom(9), before), augmentBatch(x, new SeededRandom(9), { ...before, translatePixels: 0 }))).toBe(0);
  });
});
