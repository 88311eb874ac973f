import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from './backend';
import { checkInstalledNativeBuild } from '@detl/native-tensorflow';

const nativeAvailable = checkInstalledNativeBuild('cpu');

// Three images, each with its own transform: rotation + zoom, a shift, a mirror.
const images = Array.from({ length: 3 * 7 * 9 }, (_, i) => ((i * 37) % 11) / 10);
const transforms = [
  [0.9, -0.2, 1.5, 0.1, 1.1, -0.7, 0, 0],
  [1, 0, 1, 0, 1, 0.5, 0, 0],
  [-1, 0, 8, 0, 1, 0, 0, 0],
];

async function transformOn(backend: string): Promise<Float32Array> {
  await tf.setBackend(backend);
  return tf.tidy(() => tf.image.transform(tf.tensor4d(images, [3, 7, 9, 1]), tf.tensor2d(transforms), 'bilinear', 'nearest')).data() as Promise<Float32Array>;
}

/** The same transform of one image alone, computed on the wasm backend. */
async function singleImage(index: number): Promise<Float32Array> {
  await tf.setBackend('wasm');
  const size = 7 * 9;
  return tf.tidy(() => tf.image.transform(tf.tensor4d(images.slice(index * size, (index + 1) * size), [1, 7, 9, 1]), tf.tensor2d([transforms[index] as number[]]), 'bilinear', 'nearest')).data() as Promise<Float32Array>;
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((max, value, i) => Math.max(max, Math.abs(value - (b[i] as number))), 0);
}

describe('Transform kernels (tf.image.transform, the training augmentation)', () => {
  it('transform every image of a batch with its own matrix on wasm and cpu alike', async () => {
    await initBackend('wasm');
    const wasm = await transformOn('wasm');
    const cpu = await transformOn('cpu');
    expect(maxAbsDifference(cpu, wasm)).toBeLessThan(1e-5);
    for (let i = 0; i < 3; i += 1) {
      // tfjs-backend-cpu's stock kernel returned zeros for every image after the first.
      expect(maxAbsDifference(wasm.slice(i * 63, (i + 1) * 63), await singleImage(i))).toBeLessThan(1e-6);
    }
  });

  it.skipIf(!nativeAvailable.ok)(`match on the native TensorFlow backend${nativeAvailable.ok ? '' : ` (skipped: ${nativeAvailable.reason})`}`, async () => {
    await initBackend('wasm');
    const wasm = await transformOn('wasm');
    await initBackend('tensorflow');
    expect(tf.getKernel(tf.Transform, 'tensorflow')).toBeDefined();
    const native = await transformOn('tensorflow');
    expect(maxAbsDifference(native, wasm)).toBeLessThan(1e-5);
  });
});
