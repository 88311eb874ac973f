import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATIVE_UNAVAILABLE } from '../test-support/backend-under-test';
import { createGradCamExplainer } from '../evaluation/grad-cam';
import { initBackend } from './backend';
import { readLabelledImages, writeLabelledImages } from './labelled-images';
import { loadModel } from './model-io';
import { runTrainingJob } from './run-training-job';
import { quadrantImages } from './test-data';
import { imagesToTensor, type TrainingStage } from './train';
import type { PretrainJob } from './training-job';

const stage: TrainingStage = {
  epochs: 3,
  batchSize: 16,
  optimizer: 'adam',
  learningRate: 3e-3,
  momentum: 0.9,
  schedule: 'cosine',
  augmentation: { rotationDegrees: 5, scale: 0.05, horizontalFlip: true },
};

/** Probabilities and Grad-CAM heatmaps of a saved model on `backend`, computed in this process. */
async function predictOn(backend: 'wasm' | 'tensorflow', modelDir: string, imagesFile: string): Promise<{ probabilities: number[][]; heatmaps: number[][] }> {
  await initBackend(backend);
  const images = await readLabelledImages(imagesFile);
  const model = await loadModel(modelDir);
  const x = imagesToTensor(images, Array.from({ length: images.count }, (_, i) => i), 1);
  const probabilities = tf.tidy(() => tf.softmax(model.predict(x) as tf.Tensor2D).arraySync() as number[][]);
  x.dispose();
  const explainer = createGradCamExplainer(model);
  const plane = images.size * images.size;
  const heatmaps = [0, 1, 2].map((i) => Array.from(explainer.explain(images.pixels.subarray(i * plane, (i + 1) * plane), images.size, 0).heatmap));
  explainer.dispose();
  model.dispose();
  return { probabilities, heatmaps };
}

function maxAbsDifference(a: number[][], b: number[][]): number {
  return Math.max(...a.flatMap((row, i) => row.map((value, j) => Math.abs(value - (b[i]?.[j] ?? Number.NaN)))));
}

describe.skipIf(NATIVE_UNAVAILABLE !== null)(`checkpoints move between the wasm and native backends${NATIVE_UNAVAILABLE ? ` (skipped: ${NATIVE_UNAVAILABLE})` : ''}`, () => {
  let dir: string;
  let trainFile: string;
  let validationFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'detl-cross-backend-'));
    trainFile = join(dir, 'train.bin');
    validationFile = join(dir, 'validation.bin');
    await writeLabelledImages(trainFile, quadrantImages(64, 16, 2, 1));
    await writeLabelledImages(validationFile, quadrantImages(24, 16, 2, 2));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const job = (outputDir: string, backend: 'wasm' | 'tensorflow'): PretrainJob => ({
    kind: 'pretrain',
    model: { architecture: 'small-vgg', widthMultiplier: 0.5, imageSize: 16, channels: 1, numClasses: 2 },
    outputDir,
    trainFile,
    validationFile,
    stage,
    seed: 11,
    backend,
    threads: 1,
  });

  for (const [first, second] of [
    ['wasm', 'tensorflow'],
    ['tensorflow', 'wasm'],
  ] as const) {
    it(`a run started on ${first} resumes on ${second}, and its model predicts and explains alike on both`, async () => {
      const outputDir = join(dir, `${first}-then-${second}`);
      const started = await runTrainingJob({ ...job(outputDir, first), stage: { ...stage, epochs: 2 } });
      expect(started.backend.backend).toBe(first);
      const resumed = await runTrainingJob({ ...job(outputDir, second), resumeFrom: { epoch: 2, modelDir: join(outputDir, 'epoch-2') } });
      expect(resumed.backend.backend).toBe(second);
      expect(resumed.epochs.map((m) => m.epoch)).toEqual([3]);
      // The resumed epoch starts from the first backend's weights and Adam moments: its loss continues the curve.
      const lastLoss = started.epochs.at(-1)?.trainLoss as number;
      expect(resumed.epochs[0]?.trainLoss).toBeLessThan(lastLoss * 1.5);

      const onWasm = await predictOn('wasm', resumed.bestDir, validationFile);
      const onNative = await predictOn('tensorflow', resumed.bestDir, validationFile);
      expect(maxAbsDifference(onWasm.probabilities, onNative.probabilities)).toBeLessThan(1e-4);
      expect(maxAbsDifference(onWasm.heatmaps, onNative.heatmaps)).toBeLessThan(1e-3);
    }, 120_000);
  }
});
