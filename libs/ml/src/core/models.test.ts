import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { buildModel, describeArchitecture, layerInitSeed, modelSpecOf, ModelSpecError, type ModelSpec } from './models';
import { initBackendUnderTest } from '../test-support/backend-under-test';

const standard = (architecture: ModelSpec['architecture']): ModelSpec => ({ architecture, widthMultiplier: 1, imageSize: 224, channels: 3, numClasses: 1000 });

describe('buildModel', () => {
  beforeAll(async () => {
    await initBackendUnderTest();
  });

  // Keras' own totals (keras.applications, include_top=True, 224x224x3, 1000 classes).
  it.each([
    ['vgg16', 138_357_544],
    ['resnet50', 25_636_712],
    // Single-tower AlexNet (62,378,344) minus 32,256 + 393,216 weights saved by 3x3 conv1/conv2 kernels.
    ['alexnet', 61_952_872],
  ] as const)('%s at width 1, 224 px has the standard parameter count', (architecture, expected) => {
    const model = buildModel(standard(architecture));
    expect(model.countParams()).toBe(expected);
    model.dispose();
  }, 60_000);

  it('small-vgg at 64 px is a 4-block net of 0.4–0.8 M parameters', () => {
    const model = buildModel({ architecture: 'small-vgg', widthMultiplier: 1, imageSize: 64, channels: 1, numClasses: 2 });
    expect(model.countParams()).toBeGreaterThan(400_000);
    expect(model.countParams()).toBeLessThan(800_000);
    const description = describeArchitecture(model);
    expect(description.lastConvBlock).toEqual(['block4_conv1', 'block4_bn1', 'block4_relu1', 'block4_conv2', 'block4_bn2', 'block4_relu2', 'block4_pool']);
    expect(description.featureLayer).toBe('block4_relu2');
    expect(description.head).toEqual(['head_flatten', 'head_fc1', 'head_predictions']);
    expect(description.belowLastConvBlock).toContain('block3_conv2');
    expect(description.belowLastConvBlock).not.toContain('block4_conv1');
    expect(modelSpecOf(model)?.architecture).toBe('small-vgg');
    expect(model.outputs[0]?.shape).toEqual([null, 2]);
    model.dispose();
  });

  it('builds every family small enough for CPU work and runs a forward pass', () => {
    for (const architecture of ['small-vgg', 'alexnet', 'vgg16', 'resnet50'] as const) {
      const model = buildModel({ architecture, widthMultiplier: 0.125, imageSize: 64, channels: 1, numClasses: 4 });
      const out = tf.tidy(() => (model.predict(tf.zeros([2, 64, 64, 1])) as tf.Tensor).shape);
      expect(out).toEqual([2, 4]);
      const description = describeArchitecture(model);
      expect(description.lastConvBlock.every((name) => name.startsWith('block5_') || (architecture === 'small-vgg' && name.startsWith('block4_')))).toBe(true);
      model.dispose();
    }
  });

  it('seeds the initial weights', () => {
    const spec: ModelSpec = { architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: 16, channels: 1, numClasses: 2, seed: 5 };
    const a = buildModel(spec);
    const b = buildModel(spec);
    const c = buildModel({ ...spec, seed: 6 });
    const first = (m: { getWeights(): tf.Tensor[] }) => Array.from((m.getWeights()[0] as tf.Tensor).dataSync());
    expect(first(a)).toEqual(first(b));
    expect(first(a)).not.toEqual(first(c));
    [a, b, c].forEach((m) => m.dispose());
  });

  it('draws disjoint streams for consecutive seeds', () => {
    // Before layerInitSeed, seed 6's first kernel was seed 5's second kernel's numbers rescaled
    // (correlation 1); independent draws correlate near 0.
    const spec: ModelSpec = { architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: 16, channels: 1, numClasses: 2, seed: 5 };
    const five = buildModel(spec);
    const six = buildModel({ ...spec, seed: 6 });
    const kernels = (m: { weights: { originalName: string }[]; getWeights(): tf.Tensor[] }) => m.weights.flatMap((w, i) => (w.originalName.endsWith('/kernel') ? [Array.from((m.getWeights()[i] as tf.Tensor).dataSync())] : []));
    const [sixFirst] = kernels(six) as [number[]];
    const fiveSecond = (kernels(five)[1] as number[]).slice(0, sixFirst.length);
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const [ma, mb] = [mean(sixFirst), mean(fiveSecond)];
    const cov = mean(sixFirst.map((a, i) => (a - ma) * ((fiveSecond[i] as number) - mb)));
    const correlation = cov / Math.sqrt(mean(sixFirst.map((a) => (a - ma) ** 2)) * mean(fiveSecond.map((b) => (b - mb) ** 2)));
    expect(Math.abs(correlation)).toBeLessThan(0.5);
    expect(layerInitSeed(6, 1)).not.toBe(layerInitSeed(5, 2));
    expect(() => layerInitSeed(5, 0)).toThrow(RangeError);
    [five, six].forEach((m) => m.dispose());
  });

  it('rejects bad specs with the value named', () => {
    expect(() => buildModel({ ...standard('vgg16'), architecture: 'lenet' as never })).toThrow(/unknown architecture 'lenet'/);
    expect(() => buildModel({ ...standard('vgg16'), numClasses: 1 })).toThrow(/numClasses must be an integer ≥ 2, got 1/);
    expect(() => buildModel({ ...standard('alexnet'), imageSize: 32 })).toThrow(/imageSize 32 .*layer 'block5_pool'/);
    expect(() => buildModel({ ...standard('vgg16'), imageSize: 16 })).toThrow(/imageSize 16 .*layer 'block5_pool' gets a 1x1/);
    expect(() => buildModel({ ...standard('small-vgg'), widthMultiplier: 0.01 })).toThrow(/widthMultiplier 0.01 leaves layer 'block1_conv1'/);
    expect(() => buildModel({ ...standard('small-vgg'), numClasses: 1 })).toThrow(ModelSpecError);
  });
});
