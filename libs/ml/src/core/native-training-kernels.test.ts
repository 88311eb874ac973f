import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend';
import { buildModel } from './models';
import { installNativeTrainingKernels, nativeBatchNormAvailable } from './native-training-kernels';
import { prepareBatchNormForTraining } from './train';

// These kernels exist only for tfjs-node's 'tensorflow' backend; without it (or with
// DETL_TF_BACKEND=wasm) the suite checks that they stay out of the way.
let native = false;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i += 1) max = Math.max(max, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return max;
}

function maxAbs(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

/** Loss, gradients of every trainable weight and the moving statistics after one training-mode call. */
function trainingStep(model: LayersModel, x: tf.Tensor, y: tf.Tensor): { loss: number; grads: Float32Array[]; weights: Float32Array[] } {
  return tf.tidy(() => {
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, variables);
    return {
      loss: value.dataSync()[0] as number,
      grads: variables.map((v) => grads[v.name]?.dataSync().slice() as Float32Array),
      weights: model.getWeights().map((w) => w.dataSync().slice() as Float32Array),
    };
  });
}

describe('native training kernels', () => {
  beforeAll(async () => {
    try {
      native = (await initBackend('tensorflow')).backend === 'tensorflow';
    } catch {
      native = false;
    }
    if (!native) await initBackend('wasm');
  });

  it('register only on the tensorflow backend', () => {
    const kernels = installNativeTrainingKernels();
    if (!native) {
      expect(kernels).toEqual([]);
      expect(nativeBatchNormAvailable()).toBe(false);
      return;
    }
    expect(kernels).toContain('Step');
    expect(installNativeTrainingKernels()).toBe(kernels);
    expect(nativeBatchNormAvailable()).toBe(true);
  });

  it('keep Step exact: 1 above zero, alpha at or below, NaN stays NaN', () => {
    installNativeTrainingKernels();
    const x = tf.tensor1d([NaN, -3, -0, 0, 1e-30, 2.5]);
    expect(Array.from(tf.step(x).dataSync())).toEqual([NaN, 0, 0, 0, 1, 1]);
    expect(Array.from(tf.step(x, 0.5).dataSync())).toEqual([NaN, 0.5, 0.5, 0.5, 1, 1]);
    x.dispose();
  });

  it('give the ReLU gradient as dy·step(x), also through conv layers with a ReLU', () => {
    installNativeTrainingKernels();
    const x = tf.tensor2d([[-2, -0.5, 0, 1e-20, 0.5, 3]]);
    const w = tf.tensor2d([[1, 2, 3, 4, 5, 6]]);
    const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.relu(t), w)))(x);
    expect(Array.from(dx.dataSync())).toEqual([0, 0, 0, 4, 5, 6]);
    // A conv with ReLU under gradient recording: tfjs-layers runs conv, bias add and Relu unfused.
    const input = tf.randomNormal([2, 5, 5, 3], 0, 1, 'float32', 5);
    const filter = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 6);
    const up = tf.randomNormal([2, 5, 5, 4], 0, 1, 'float32', 7);
    const [gIn, gFilter] = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.sum(tf.mul(tf.relu(tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, 'same')), up)))([input, filter]);
    const pre = tf.conv2d(input as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same');
    const masked = tf.mul(up, tf.cast(tf.greater(pre, 0), 'float32'));
    const [rIn, rFilter] = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, 'same'), masked)))([input, filter]);
    expect(maxAbsDiff(gIn?.dataSync() as Float32Array, rIn?.dataSync() as Float32Array)).toBeLessThan(1e-5);
    expect(maxAbsDiff(gFilter?.dataSync() as Float32Array, rFilter?.dataSync() as Float32Array)).toBeLessThan(1e-4);
    tf.dispose([x, w, dx, input, filter, up, pre, masked, gIn, gFilter, rIn, rFilter] as tf.Tensor[]);
  });

  it('train batch norm through one fused op with the same outputs, gradients and moving statistics as tfjs-layers', () => {
    if (!native) return;
    installNativeTrainingKernels();
    const spec = { architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: 16, channels: 1, numClasses: 3, seed: 7 } as const;
    const stock = buildModel(spec);
    const fused = buildModel(spec);
    prepareBatchNormForTraining(fused);
    const x = tf.randomUniform([6, 16, 16, 1], 0, 1, 'float32', 3);
    const y = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32'), 3));
    const before = tf.memory().numTensors;
    const reference = trainingStep(stock, x, y);
    const ours = trainingStep(fused, x, y);
    // A second step: no tensors may leak through the kept batch statistics or the saved reserves.
    trainingStep(fused, x, y);
    trainingStep(stock, x, y);
    expect(tf.memory().numTensors).toBe(before);
    expect(Math.abs(ours.loss - reference.loss)).toBeLessThan(1e-5);
    expect(ours.grads).toHaveLength(reference.grads.length);
    reference.grads.forEach((g, i) => {
      // A conv bias in front of a BN has a true gradient of 0 (BN removes the mean): what both
      // paths give there is rounding noise, hence the floor on the scale.
      const scale = Math.max(maxAbs(g), 1e-2);
      expect(maxAbsDiff(ours.grads[i] as Float32Array, g) / scale).toBeLessThan(1e-3);
    });
    // Moving mean and variance (non-trainable weights) moved the same way.
    reference.weights.forEach((w, i) => expect(maxAbsDiff(ours.weights[i] as Float32Array, w)).toBeLessThan(1e-5));
    tf.dispose([x, y]);
    stock.dispose();
    fused.dispose();
  });
});
