import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ARCHITECTURES, buildModel, describeArchitecture } from '../core';
import { createGradCamExplainer } from './grad-cam';
import { initBackendUnderTest } from '../test-support/backend-under-test';

describe('Grad-CAM on the networks detl builds', () => {
  beforeAll(async () => {
    await initBackendUnderTest();
  });

  it.each(ARCHITECTURES)('%s: explains the core’s feature layer without leaking tensors', (architecture) => {
    const size = 64;
    const model = buildModel({ architecture, widthMultiplier: 0.125, imageSize: size, channels: 1, numClasses: 4, seed: 1 });
    try {
      const explainer = createGradCamExplainer(model);
      // Found from the graph alone, it must agree with the layer the core names by convention
      // (for ResNet-50 the block output after the residual Add and ReLU).
      expect(explainer.layerName).toBe(describeArchitecture(model).featureLayer);
      const pixels = Uint8Array.from({ length: size * size }, (_, i) => (i * 37) % 251);
      explainer.explain(pixels, size);
      const before = tf.memory().numTensors;
      const result = explainer.explain(pixels, size, 3);
      expect(tf.memory().numTensors).toBe(before);
      expect(result.heatmap).toHaveLength(size * size);
      expect(result.probabilities.reduce((s, p) => s + p, 0)).toBeCloseTo(1, 5);
      expect(Math.min(...result.heatmap)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...result.heatmap)).toBeLessThanOrEqual(1);
    } finally {
      model.dispose();
    }
  });
});
