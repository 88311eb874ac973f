import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { initBackend } from './backend';
import { installBatchNormGradient } from './batch-norm-gradient';


type Shapes = { x: number[]; withScale: boolean };

function gradientsOf({ x: shape, withScale }: Shapes): Float32Array[] {
  const channels = shape[shape.length - 1] as number;
  const x = tf.randomNormal(shape, 0, 2, 'float32', 1);
  const offset = tf.randomNormal([channels], 0, 1, 'float32', 2);
  const scale = tf.randomNormal([channels], 1, 0.5, 'float32', 3);
  const weights = tf.randomNormal(shape, 0, 1, 'float32', 4);
  // Batch statistics as in training mode, so the gradient also flows through mean and variance.
  const f = (xs: tf.Tensor, off: tf.Tensor, sc: tf.Tensor) => {
    const { mean, variance } = tf.moments(xs, Array.from({ length: shape.length - 1 }, (_, i) => i));
    return tf.sum(tf.mul(tf.batchNorm(xs, mean, variance, off, withScale ? sc : undefined, 1e-3), weights));
  };
  const grads = tf.grads(f)([x, offset, scale]);
  const values = grads.map((g) => g.dataSync().slice() as Float32Array);
  tf.dispose([x, offset, scale, weights, ...grads]);
  return values;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i += 1) max = Math.max(max, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return max;
}

describe('installBatchNormGradient', () => {
  it('matches the stock gradient for x, offset and scale, through batch statistics', async () => {
    // Not initBackend: it installs the replacement, and the stock one is the reference here.
    await tf.setBackend('wasm');
    const cases: Shapes[] = [
      { x: [4, 5, 6, 3], withScale: true },
      // (No case without scale: tfjs cannot even record batchNorm without one for gradients.)
      { x: [2, 3, 3, 8], withScale: true },
      { x: [6, 7], withScale: true },
    ];
    const stock = cases.map(gradientsOf);
    expect(installBatchNormGradient()).toBe(true);
    expect(installBatchNormGradient()).toBe(false);
    const replaced = cases.map(gradientsOf);
    cases.forEach((_, c) => {
      (stock[c] as Float32Array[]).forEach((reference, i) => {
        const ours = (replaced[c] as Float32Array[])[i] as Float32Array;
        expect(maxAbsDiff(ours, reference)).toBeLessThan(1e-4);
        expect(Math.max(...Array.from(reference, Math.abs))).toBeGreaterThan(1e-3);
      });
    });
  });

  it('is what initBackend leaves in place', async () => {
    const info = await initBackend('wasm');
    expect(info.replacedGradients).toEqual(['FusedBatchNorm']);
  });
});
