import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend';
import { buildModel } from './models';
import { measureThroughput } from './throughput';

describe('measureThroughput', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('reports positive train/infer rates, infer faster than train, without leaking tensors', () => {
    const model = buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: 16, channels: 1, numClasses: 2 });
    const before = tf.memory().numTensors;
    const result = measureThroughput(model, { batchSize: 4, warmup: 1, iterations: 3 });
    expect(tf.memory().numTensors).toBe(before);
    // DETL_TF_BACKEND=tensorflow runs the suite on the native backend.
    expect(result.backend).toBe(tf.getBackend());
    expect(result.trainImagesPerSecond).toBeGreaterThan(0);
    expect(result.inferImagesPerSecond).toBeGreaterThan(result.trainImagesPerSecond);
    model.dispose();
  });
});
