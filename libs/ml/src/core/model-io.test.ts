import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { MemoryObjectStore } from '@detl/storage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModel, describeArchitecture, modelSpecOf } from './models';
import { loadModel, loadModelFromStore, loadOptimizer, loadOptimizerFromStore, saveModel, saveModelToStore } from './model-io';
import { quadrantImages } from './test-data';
import { createOptimizer, trainModel, type TrainingStage } from './train';
import { initBackendUnderTest } from '../test-support/backend-under-test';


const stage: TrainingStage = {
  epochs: 2,
  batchSize: 8,
  optimizer: 'adam',
  learningRate: 1e-3,
  momentum: 0.9,
  schedule: 'cosine',
  augmentation: { rotationDegrees: 5, scale: 0.05, horizontalFlip: true },
};

const spec = { architecture: 'small-vgg' as const, widthMultiplier: 0.25, imageSize: 16, channels: 1 as const, numClasses: 4, seed: 3 };

function predict(model: LayersModel): number[] {
  return tf.tidy(() => Array.from((model.predict(tf.ones([2, 16, 16, 1])) as tf.Tensor).dataSync()));
}

describe('model I/O', () => {
  let dir: string;
  beforeAll(async () => {
    await initBackendUnderTest();
    dir = await mkdtemp(join(tmpdir(), 'detl-model-io-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips through a directory in the browser-loadable layers format', async () => {
    const model = buildModel(spec);
    const paths = await saveModel(model, join(dir, 'a'));
    expect(paths.map((p) => p.slice(p.lastIndexOf('/') + 1))).toEqual(['model.json', 'weights.bin']);
    const json = JSON.parse(await readFile(join(dir, 'a', 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest[0].paths).toEqual(['./weights.bin']);
    const weightBytes = json.weightsManifest[0].weights.reduce((n: number, w: { shape: number[] }) => n + 4 * w.shape.reduce((a, b) => a * b, 1), 0);
    expect((await readFile(join(dir, 'a', 'weights.bin'))).length).toBe(weightBytes);

    const loaded = await loadModel(join(dir, 'a'), { architecture: 'small-vgg' });
    expect(predict(loaded)).toEqual(predict(model));
    expect(modelSpecOf(loaded)).toMatchObject({ architecture: 'small-vgg', imageSize: 16, numClasses: 4 });
    expect(describeArchitecture(loaded).lastConvBlock).toEqual(describeArchitecture(model).lastConvBlock);
    model.dispose();
    loaded.dispose();
  });

  it('round-trips through the object store and rejects another architecture by name', async () => {
    const store = new MemoryObjectStore();
    const model = buildModel(spec);
    const stored = await saveModelToStore(model, store, 'experiments/x/pretrain/best/');
    expect(stored.map((s) => s.key)).toEqual(['experiments/x/pretrain/best/model.json', 'experiments/x/pretrain/best/weights.bin']);
    expect(stored[1]?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(stored.map((s) => s.contentType)).toEqual(['application/json', 'application/octet-stream']);
    const loaded = await loadModelFromStore(store, 'experiments/x/pretrain/best');
    expect(predict(loaded)).toEqual(predict(model));
    await expect(loadModelFromStore(store, 'experiments/x/pretrain/best', { architecture: 'vgg16' })).rejects.toThrow(
      /checkpoint memory:\/\/memory\/experiments\/x\/pretrain\/best is a small-vgg model, but the experiment expects vgg16/,
    );
    await expect(loadModelFromStore(store, 'experiments/x/nothing')).rejects.toThrow(/nothing: no model.json/);
    await store.deleteObject('experiments/x/pretrain/best/weights.bin');
    await expect(loadModelFromStore(store, 'experiments/x/pretrain/best')).rejects.toThrow(/weights.bin listed in model.json is missing/);
    model.dispose();
    loaded.dispose();
  });

  it('saves the Adam state so a resumed run is bit-identical to an uninterrupted one', async () => {
    const train = quadrantImages(16, 16, 4, 2);
    const straight = buildModel(spec);
    (await trainModel({ model: straight, train, stage, seed: 5 })).optimizer.dispose();

    const first = buildModel(spec);
    const optimizer = createOptimizer(stage);
    const controller = new AbortController();
    await expect(trainModel({ model: first, train, stage, seed: 5, optimizer, signal: controller.signal, onEpochEnd: () => controller.abort() })).rejects.toThrow();
    const store = new MemoryObjectStore();
    await saveModelToStore(first, store, 'ckpt', { optimizer });
    optimizer.dispose();

    const resumed = await loadModelFromStore(store, 'ckpt');
    const restored = await loadOptimizerFromStore(store, 'ckpt');
    expect(restored?.getClassName()).toBe('Adam');
    await trainModel({ model: resumed, train, stage, seed: 5, startEpoch: 1, optimizer: restored as tf.Optimizer });
    const a = straight.getWeights().map((w) => Array.from(w.dataSync()));
    const b = resumed.getWeights().map((w) => Array.from(w.dataSync()));
    expect(b).toEqual(a);
    // Without the saved moments the continuation drifts measurably.
    const fresh = await loadModelFromStore(store, 'ckpt');
    await trainModel({ model: fresh, train, stage, seed: 5, startEpoch: 1 });
    const freshDiff = tf.tidy(() => Math.max(...straight.getWeights().map((w, i) => tf.max(tf.abs(tf.sub(w, fresh.getWeights()[i] as tf.Tensor))).dataSync()[0] as number)));
    expect(freshDiff).toBeGreaterThan(1e-4);
    fresh.dispose();
    expect(await loadOptimizer(join(dir, 'none'))).toBeNull();
    [straight, first, resumed].forEach((m) => m.dispose());
    restored?.dispose();
  }, 30_000);
});
