import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from '@detl/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend';
import { buildModel, describeArchitecture, modelSpecOf } from './models';
import { downloadCheckpoint, loadModel, loadModelFromStore, loadOptimizer, loadOptimizerFromStore, saveModel, saveModelToStore, uploadCheckpoint } from './model-io';
import { quadrantImages } from './test-data';
import { createOptimizer, trainModel, type TrainingStage } from './train';

/** Just enough of an S3 bucket for round trips; the real S3 store is tested in libs/storage. */
class MemoryStore implements ObjectStore {
  readonly bucket = 'test';
  readonly objects = new Map<string, Uint8Array>();
  readonly types = new Map<string, string>();
  async putObject(key: string, body: Uint8Array | string, contentType = 'application/octet-stream'): Promise<StoredObject> {
    const bytes = typeof body === 'string' ? Buffer.from(body) : Uint8Array.from(body);
    this.objects.set(key, bytes);
    this.types.set(key, contentType);
    return { key, sizeBytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), contentType };
  }
  async getObject(key: string): Promise<Uint8Array> {
    const bytes = this.objects.get(key);
    if (!bytes) throw new ObjectNotFoundError(key);
    return bytes;
  }
  async headObject(key: string): Promise<{ sizeBytes: number } | null> {
    const bytes = this.objects.get(key);
    return bytes ? { sizeBytes: bytes.length } : null;
  }
  async listKeys(prefix: string): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
  async deleteObject(key: string): Promise<void> {
    this.objects.delete(key);
  }
  uri(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }
}

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
    await initBackend('wasm');
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
    const store = new MemoryStore();
    const model = buildModel(spec);
    const stored = await saveModelToStore(model, store, 'experiments/x/pretrain/best/');
    expect(stored.map((s) => s.key)).toEqual(['experiments/x/pretrain/best/model.json', 'experiments/x/pretrain/best/weights.bin']);
    expect(stored[1]?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(stored.map((s) => s.contentType)).toEqual(['application/json', 'application/octet-stream']);
    const loaded = await loadModelFromStore(store, 'experiments/x/pretrain/best');
    expect(predict(loaded)).toEqual(predict(model));
    await expect(loadModelFromStore(store, 'experiments/x/pretrain/best', { architecture: 'vgg16' })).rejects.toThrow(
      /checkpoint s3:\/\/test\/experiments\/x\/pretrain\/best is a small-vgg model, but the experiment expects vgg16/,
    );
    await expect(loadModelFromStore(store, 'experiments/x/nothing')).rejects.toThrow(/nothing: no model.json/);
    store.objects.delete('experiments/x/pretrain/best/weights.bin');
    await expect(loadModelFromStore(store, 'experiments/x/pretrain/best')).rejects.toThrow(/weights.bin listed in model.json is missing/);
    model.dispose();
    loaded.dispose();
  });

  it('copies checkpoint directories to and from the store byte for byte', async () => {
    const store = new MemoryStore();
    const model = buildModel(spec);
    const optimizer = createOptimizer(stage);
    await saveModel(model, join(dir, 'up'), { optimizer });
    const stored = await uploadCheckpoint(join(dir, 'up'), store, 'experiments/e/folds/0/epoch-1');
    expect(stored.map((s) => s.key.split('/').pop())).toEqual(['model.json', 'optimizer.bin', 'optimizer.json', 'weights.bin']);
    await store.putObject('experiments/e/folds/0/epoch-1/nested/other.bin', 'x');
    const written = await downloadCheckpoint(store, 'experiments/e/folds/0/epoch-1', join(dir, 'down'));
    expect(written).toHaveLength(4);
    for (const name of ['model.json', 'weights.bin', 'optimizer.json', 'optimizer.bin']) {
      expect(Buffer.compare(await readFile(join(dir, 'down', name)), await readFile(join(dir, 'up', name)))).toBe(0);
    }
    await expect(downloadCheckpoint(store, 'experiments/none', join(dir, 'x'))).rejects.toThrow(/s3:\/\/test\/experiments\/none\/: no model.json/);
    await expect(uploadCheckpoint(join(dir, 'down', 'missing'), store, 'p')).rejects.toThrow();
    optimizer.dispose();
    model.dispose();
  });

  it('saves the Adam state so a resumed run is bit-identical to an uninterrupted one', async () => {
    const train = quadrantImages(16, 16, 4, 2);
    const straight = buildModel(spec);
    (await trainModel({ model: straight, train, stage, seed: 5 })).optimizer.dispose();

    const first = buildModel(spec);
    const optimizer = createOptimizer(stage);
    const controller = new AbortController();
    await expect(trainModel({ model: first, train, stage, seed: 5, optimizer, signal: controller.signal, onEpochEnd: () => controller.abort() })).rejects.toThrow();
    const store = new MemoryStore();
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
