import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import type { LabelledImages } from './labelled-images';
import { buildModel } from './models';
import { quadrantImages, testTrainingStage } from './test-data';
import { classProbabilities } from './scoring';
import { evaluateModel, imagesToTensor, learningRateAt, predictProbabilities, trainModel, type TrainingStage } from './train';
import { balancedClassWeights, classWeightsFor, trainingLoss } from './training-levers';
import { evaluateOnTest } from './training-runner';
import { initBackendUnderTest } from '../test-support/backend-under-test';

const SIZE = 8;
const CLASSES = 4;
const noAugmentation = { rotationDegrees: 0, scale: 0, horizontalFlip: false };

/** A net without batch norm, so its training-mode logits are its predictions: flatten → dense. */
function denseNet(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.flatten({ inputShape: [SIZE, SIZE, 1] }),
      tfl.layers.dense({ units: CLASSES, kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }), biasInitializer: tfl.initializers.constant({ value: 0.1 }) }),
    ],
  });
}

/** Quadrant images with imbalanced labels: 7 × class 0, 2 × class 1, 2 × class 2, 1 × class 3. */
function imbalanced(): LabelledImages {
  const images = quadrantImages(12, SIZE, CLASSES, 4);
  images.labels.set([0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3]);
  return images;
}

/** Σ wᵢ·CE(smoothed targetᵢ, softmax(logitsᵢ)) / Σ wᵢ, in doubles. */
function expectedLoss(logits: number[][], labels: ArrayLike<number>, smoothing: number, weights: ArrayLike<number> | null): number {
  let weighted = 0;
  let total = 0;
  logits.forEach((row, i) => {
    const max = Math.max(...row);
    const logSum = Math.log(row.reduce((sum, z) => sum + Math.exp(z - max), 0)) + max;
    const label = labels[i] as number;
    const loss = -row.reduce((sum, z, c) => sum + ((c === label ? 1 - smoothing : 0) + smoothing / row.length) * (z - logSum), 0);
    const weight = weights ? (weights[label] as number) : 1;
    weighted += weight * loss;
    total += weight;
  });
  return weighted / total;
}

/** The loss of the first (whole-set) batch trainModel optimises, and the logits before it. */
async function firstBatchLoss(images: LabelledImages, levers: Partial<TrainingStage>): Promise<{ loss: number; logits: number[][] }> {
  const model = denseNet();
  const logits = tf.tidy(() => (model.predict(imagesToTensor(images, Array.from({ length: images.count }, (_, i) => i), 1)) as tf.Tensor2D).arraySync());
  let loss = NaN;
  const stage = testTrainingStage({ epochs: 1, batchSize: images.count, augmentation: noAugmentation, ...levers });
  const result = await trainModel({ model, train: images, stage, seed: 1, onBatchEnd: (batch) => void (loss = batch.loss) });
  result.optimizer.dispose();
  model.dispose();
  return { loss, logits };
}

describe('class weighting', () => {
  it("computes scikit-learn's balanced weights: n_total / (n_classes · n_class)", () => {
    const weights = Array.from(balancedClassWeights(imbalanced().labels, CLASSES));
    [12 / (4 * 7), 12 / (4 * 2), 12 / (4 * 2), 12 / (4 * 1)].forEach((expected, c) => expect(weights[c]).toBeCloseTo(expected, 6));
    // A class without images: the present classes share n_classes, the absent one weighs nothing.
    expect(Array.from(balancedClassWeights([0, 0, 1], 3))).toEqual([0.75, 1.5, 0]);
    expect(classWeightsFor('none', [0, 0, 1], 3)).toBeNull();
    expect(classWeightsFor(undefined, [0, 0, 1], 3)).toBeNull();
  });
});

describe('the training loss', () => {
  beforeAll(async () => {
    await initBackendUnderTest();
  });

  it('is the plain mean cross-entropy by default, and follows the smoothing and weighting formulas otherwise', async () => {
    const images = imbalanced();
    const weights = balancedClassWeights(images.labels, CLASSES);
    const plain = await firstBatchLoss(images, {});
    expect(plain.loss).toBeCloseTo(expectedLoss(plain.logits, images.labels, 0, null), 5);
    const smoothed = await firstBatchLoss(images, { labelSmoothing: 0.2 });
    expect(smoothed.loss).toBeCloseTo(expectedLoss(smoothed.logits, images.labels, 0.2, null), 5);
    expect(Math.abs(smoothed.loss - plain.loss)).toBeGreaterThan(1e-3);
    const balanced = await firstBatchLoss(images, { classWeighting: 'balanced' });
    expect(balanced.loss).toBeCloseTo(expectedLoss(balanced.logits, images.labels, 0, weights), 5);
    expect(Math.abs(balanced.loss - plain.loss)).toBeGreaterThan(1e-3);
    const both = await firstBatchLoss(images, { labelSmoothing: 0.1, classWeighting: 'balanced' });
    expect(both.loss).toBeCloseTo(expectedLoss(both.logits, images.labels, 0.1, weights), 5);
  });

  it('is a weighted mean within a batch whatever the weights sum to', () => {
    const logits = [
      [2, -1, 0.5, 0],
      [0.1, 0.2, -0.3, 1.5],
      [-2, 3, 0, 0.5],
    ];
    const labels = [0, 3, 1];
    const classWeights = [0.25, 4, 1, 3];
    const loss = tf.tidy(() =>
      trainingLoss(
        tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES) as tf.Tensor2D,
        tf.tensor2d(logits),
        0.1,
        tf.tensor1d(labels.map((label) => classWeights[label] as number)),
      ).dataSync()[0] as number,
    );
    expect(loss).toBeCloseTo(expectedLoss(logits, labels, 0.1, classWeights), 5);
  });
});

describe('decoupled weight decay', () => {
  beforeAll(async () => {
    await initBackendUnderTest();
  });

  it('shrinks kernels by exactly Π (1 − lr_t·λ) when their gradients are zero, and leaves biases alone', async () => {
    // Black images and a conv bias of −0.5 under a ReLU: every kernel gradient is exactly 0, so
    // Adam moves no kernel and the conv bias stays put; only the decay changes the kernels.
    const model = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 2, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }), biasInitializer: tfl.initializers.constant({ value: -0.5 }) }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: CLASSES, kernelInitializer: tfl.initializers.glorotUniform({ seed: 6 }) }),
      ],
    });
    const black: LabelledImages = { pixels: new Uint8Array(8 * SIZE * SIZE), labels: Int32Array.from({ length: 8 }, (_, i) => i % CLASSES), count: 8, size: SIZE };
    const stage = testTrainingStage({ epochs: 2, batchSize: 4, learningRate: 0.05, augmentation: noAugmentation, weightDecay: 0.1 });
    const before = model.getWeights().map((w) => Float32Array.from(w.dataSync()));
    const result = await trainModel({ model, train: black, stage, seed: 2 });
    const after = model.getWeights().map((w) => Float32Array.from(w.dataSync()));
    const steps = 4;
    const shrink = (values: Float32Array) => {
      const out = Float32Array.from(values);
      for (let step = 0; step < steps; step += 1) {
        const factor = Math.fround(1 - learningRateAt(stage, step, steps) * 0.1);
        for (let i = 0; i < out.length; i += 1) out[i] = Math.fround((out[i] as number) * factor);
      }
      return out;
    };
    const names = model.weights.map((w) => w.originalName);
    expect(names).toEqual([expect.stringMatching(/kernel$/), expect.stringMatching(/bias$/), expect.stringMatching(/kernel$/), expect.stringMatching(/bias$/)]);
    expect(after[0]).toEqual(shrink(before[0] as Float32Array));
    expect(after[2]).toEqual(shrink(before[2] as Float32Array));
    expect(after[1]).toEqual(before[1]);
    // The schedule's rate of each step, not a constant: cosine over 4 steps shrinks less than 4 full steps.
    expect(Math.abs((after[0] as Float32Array)[0] as number)).toBeGreaterThan(Math.abs((before[0] as Float32Array)[0] as number) * (1 - 0.05 * 0.1) ** 4);
    result.optimizer.dispose();
    model.dispose();
  });

  it('changes only the kernels of a batch-norm net: θ·(1 − lr·λ) before the same SGD update', async () => {
    const images = quadrantImages(8, 16, CLASSES, 7);
    const stage = testTrainingStage({ epochs: 1, batchSize: 8, optimizer: 'sgd', momentum: 0, learningRate: 0.05, schedule: 'constant', augmentation: noAugmentation });
    const trainOnce = async (weightDecay: number) => {
      const model = buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: 16, channels: 1, numClasses: CLASSES, seed: 11 });
      const initial = model.weights.map((w) => Float32Array.from(w.read().dataSync()));
      const result = await trainModel({ model, train: images, stage: { ...stage, weightDecay }, seed: 3 });
      const weights = model.weights.map((w) => ({ name: w.originalName, trainable: w.trainable, values: Float32Array.from(w.read().dataSync()) }));
      result.optimizer.dispose();
      model.dispose();
      return { initial, weights };
    };
    const plain = await trainOnce(0);
    const decayed = await trainOnce(0.1);
    let kernels = 0;
    decayed.weights.forEach((weight, index) => {
      const reference = plain.weights[index]?.values as Float32Array;
      if (weight.trainable && /kernel$/.test(weight.name)) {
        kernels += 1;
        const initial = plain.initial[index] as Float32Array;
        const worst = weight.values.reduce((max, value, i) => Math.max(max, Math.abs(value - ((reference[i] as number) - 0.05 * 0.1 * (initial[i] as number)))), 0);
        expect(worst, weight.name).toBeLessThan(1e-6);
      } else {
        // Biases, gamma, beta and the moving statistics: bit for bit the run without decay.
        expect(weight.values, weight.name).toEqual(reference);
      }
    });
    expect(kernels).toBeGreaterThan(2);
  });
});

describe('test-time flip averaging', () => {
  beforeAll(async () => {
    await initBackendUnderTest();
  });

  it('averages the softmax of each image and of its left-right mirror, wherever images are scored', () => {
    const model = buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: 16, channels: 1, numClasses: CLASSES, seed: 2 });
    const images = quadrantImages(6, 16, CLASSES, 9);
    const mirrored = { ...images, pixels: images.pixels.map((_, p) => images.pixels[p - (p % 16) + 15 - (p % 16)] as number) };
    const plain = predictProbabilities(model, images);
    const ofMirror = predictProbabilities(model, mirrored);
    const expected = plain.map((row, i) => row.map((p, c) => (p + (ofMirror[i]?.[c] as number)) / 2));
    const averaged = predictProbabilities(model, images, 4, { testTimeFlip: true });
    averaged.forEach((row, i) => row.forEach((p, c) => expect(p).toBeCloseTo(expected[i]?.[c] as number, 6)));
    // The quadrants are not symmetric: the flip changes something.
    expect(Math.max(...plain.flatMap((row, i) => row.map((p, c) => Math.abs(p - (ofMirror[i]?.[c] as number)))))).toBeGreaterThan(1e-4);

    // The same helper on a tensor: mean of softmax(x) and softmax(tf.reverse(x, 2)).
    const x = imagesToTensor(images, [0, 1, 2], 1);
    const direct = tf.tidy(() => tf.div(tf.add(tf.softmax(model.predict(x) as tf.Tensor2D), tf.softmax(model.predict(tf.reverse(x, 2)) as tf.Tensor2D)), 2).arraySync() as number[][]);
    const helper = tf.tidy(() => classProbabilities(model, x, { testTimeFlip: true }).arraySync());
    helper.forEach((row, i) => row.forEach((p, c) => expect(p).toBeCloseTo(direct[i]?.[c] as number, 6)));
    x.dispose();

    // A fold's held-out evaluation: probabilities, classes, accuracy, loss and confusion matrix follow the average.
    const test = evaluateOnTest(model, images, 4, { testTimeFlip: true });
    test.probabilities.forEach((row, i) => row.forEach((p, c) => expect(p).toBeCloseTo(expected[i]?.[c] as number, 6)));
    const argmax = (row: number[]) => row.indexOf(Math.max(...row));
    expect(Array.from(test.predictedClass)).toEqual(expected.map(argmax));
    expect(test.accuracy).toBeCloseTo(expected.filter((row, i) => argmax(row) === images.labels[i]).length / images.count, 9);
    expect(test.loss).toBeCloseTo(-expected.reduce((sum, row, i) => sum + Math.log(row[images.labels[i] as number] as number), 0) / images.count, 5);
    expect(test.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(images.count);
    const unflipped = evaluateModel(model, images, 4);
    expect(unflipped.flipAveraged).toBeNull();
    expect(evaluateOnTest(model, images, 4).probabilities.map(argmax)).toEqual(plain.map(argmax));
    model.dispose();
  });
});
