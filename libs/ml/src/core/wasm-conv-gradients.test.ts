import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend';

interface Case {
  name: string;
  x: [number, number, number, number];
  k: [number, number, number, number];
  strides: number;
  pad: 'same' | 'valid';
}

const cases: Case[] = [
  { name: '3x3 same', x: [2, 9, 9, 3], k: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3x3 valid', x: [2, 8, 7, 2], k: [3, 3, 2, 5], strides: 1, pad: 'valid' },
  { name: '1x1 same', x: [3, 6, 6, 4], k: [1, 1, 4, 2], strides: 1, pad: 'same' },
  { name: '5x3 same, odd sizes', x: [1, 7, 10, 2], k: [5, 3, 2, 3], strides: 1, pad: 'same' },
  { name: '2x2 same (asymmetric pad)', x: [2, 6, 5, 2], k: [2, 2, 2, 3], strides: 1, pad: 'same' },
  { name: '3x3 stride 2 same', x: [2, 9, 8, 3], k: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { name: '1x1 stride 2 valid', x: [2, 7, 8, 4], k: [1, 1, 4, 6], strides: 2, pad: 'valid' },
  { name: '1x1 stride 2 valid, odd size', x: [2, 9, 7, 3], k: [1, 1, 3, 5], strides: 2, pad: 'valid' },
  { name: '1x1 stride 2 same', x: [1, 8, 9, 2], k: [1, 1, 2, 3], strides: 2, pad: 'same' },
  { name: '1x1 stride 3 same', x: [1, 10, 11, 2], k: [1, 1, 2, 3], strides: 3, pad: 'same' },
  { name: '7x7 stride 2 valid', x: [1, 15, 14, 1], k: [7, 7, 1, 3], strides: 2, pad: 'valid' },
  { name: '3x3 stride 3 valid remainder', x: [2, 11, 10, 2], k: [3, 3, 2, 2], strides: 3, pad: 'valid' },
];

function random(shape: number[], seed: number): Float32Array {
  let state = seed;
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i += 1) {
    state = (state * 1103515245 + 12345) % 2147483648;
    values[i] = state / 2147483648 - 0.5;
  }
  return values;
}

async function gradients(backend: 'cpu' | 'wasm', c: Case): Promise<{ dx: Float32Array; dw: Float32Array }> {
  await tf.setBackend(backend);
  const x = tf.tensor4d(random(c.x, 1), c.x);
  const w = tf.tensor4d(random(c.k, 2), c.k);
  const y = tf.conv2d(x, w, c.strides, c.pad);
  const dy = tf.tensor4d(random(y.shape, 3), y.shape);
  const dx = tf.conv2dTranspose(dy as tf.Tensor4D, w, c.x, c.strides, c.pad);
  const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: c.k }) as tf.Tensor;
  const result = { dx: (await dx.data()) as Float32Array, dw: (await dw.data()) as Float32Array };
  tf.dispose([x, w, y, dy, dx, dw]);
  return result;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i += 1) max = Math.max(max, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return max;
}

describe('wasm conv gradient kernels', () => {
  beforeAll(async () => {
    const info = await initBackend('wasm');
    expect(info.registeredKernels).toEqual(['Conv2DBackpropFilter', 'Conv2DBackpropInput']);
  });

  it.each(cases)('match the cpu kernels: $name', async (c) => {
    const reference = await gradients('cpu', c);
    const wasm = await gradients('wasm', c);
    expect(maxAbsDiff(wasm.dx, reference.dx)).toBeLessThan(1e-4);
    expect(maxAbsDiff(wasm.dw, reference.dw)).toBeLessThan(1e-4);
    // A zero gradient would match trivially; make sure the values carry signal.
    expect(maxAbsDiff(reference.dw, new Float32Array(reference.dw.length))).toBeGreaterThan(1e-3);
  });

  it('leaves no intermediate tensors behind', async () => {
    await tf.setBackend('wasm');
    const c = cases[5] as Case;
    await gradients('wasm', c);
    const before = tf.memory().numTensors;
    const bytesBefore = tf.memory().numBytes;
    await gradients('wasm', c);
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(bytesBefore);
  });

  it('keeps the wasm heap flat over many gradient steps (no XNNPACK operators left behind)', async () => {
    await tf.setBackend('wasm');
    // Every step makes new transient "filters" (transposed dy); their operators must go with them.
    const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
    const w = tf.variable(tf.randomNormal<tf.Rank.R4>([3, 3, 4, 8], 0, 1, 'float32', 1));
    const w2 = tf.variable(tf.randomNormal<tf.Rank.R4>([1, 1, 8, 8], 0, 1, 'float32', 2));
    const step = (i: number) =>
      tf.tidy(() => {
        const x = tf.randomNormal<tf.Rank.R4>([2 + (i % 3), 24, 24, 4], 0, 1, 'float32', i);
        const { grads } = tf.variableGrads(() => tf.sum(tf.square(tf.conv2d(tf.relu(tf.conv2d(x, w, 1, 'same')), w2, 2, 'valid'))), [w, w2]);
        return Object.values(grads).map((g) => g.dataSync()[0]);
      });
    for (let i = 0; i < 30; i += 1) step(i);
    const settled = heap();
    const tensors = tf.memory().numTensors;
    for (let i = 30; i < 150; i += 1) step(i);
    expect(heap()).toBe(settled);
    expect(tf.memory().numTensors).toBe(tensors);
    tf.dispose([w, w2]);
  });

  it('drives tf.grads through a conv layer on wasm', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomNormal<tf.Rank.R4>([2, 8, 8, 1], 0, 1, 'float32', 7);
    const w = tf.variable(tf.randomNormal<tf.Rank.R4>([3, 3, 1, 4], 0, 1, 'float32', 8));
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(tf.conv2d(x, w, 1, 'same'))), [w]);
    expect(grads[w.name]?.shape).toEqual([3, 3, 1, 4]);
    tf.dispose([x, w, ...Object.values(grads)]);
  });
});
