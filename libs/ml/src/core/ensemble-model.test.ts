import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { model as functionalModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGradCamExplainer } from '../evaluation/grad-cam';
import { initBackendUnderTest } from '../test-support/backend-under-test';
import { CheckpointMismatchError, prepareForFineTuning } from './fine-tune';
import { loadModel, saveModel } from './model-io';
import { buildModel, ENSEMBLE_OUTPUT_LAYER, memberLogits, modelSpecOf, ModelSpecError, type ModelSpec } from './models';
import { quadrantImages, testTrainingStage } from './test-data';
import { trainModel } from './train';

const single: ModelSpec = { architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: 16, channels: 1, numClasses: 4, seed: 7 };

/** Weights of the layer named `name` (a member's layer is `member<m>_<name>`). */
function layerWeights(model: LayersModel, name: string): number[][] {
  return model.getLayer(name).getWeights().map((w) => Array.from(w.dataSync()));
}

function logits(model: LayersModel, x: tf.Tensor4D): number[] {
  return tf.tidy(() => Array.from((model.predict(x) as tf.Tensor).dataSync()));
}

describe('ensemble models (model.members)', () => {
  let dir: string;
  beforeAll(async () => {
    await initBackendUnderTest();
    dir = await mkdtemp(join(tmpdir(), 'detl-ensemble-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('builds independent members whose first starts from the single network of the same seed, and outputs the mean of their logits', () => {
    const one = buildModel(single);
    const three = buildModel({ ...single, members: 3 });
    expect(three.countParams()).toBe(3 * one.countParams());
    expect(three.outputs[0]?.sourceLayer.name).toBe(ENSEMBLE_OUTPUT_LAYER);
    expect(memberLogits(three).map((t) => t.sourceLayer.name)).toEqual(['member1_head_predictions', 'member2_head_predictions', 'member3_head_predictions']);
    expect(memberLogits(one)).toEqual(one.outputs);
    // Member 1 is the single network's draw; members 2 and 3 are draws of their own.
    expect(layerWeights(three, 'member1_block1_conv1')).toEqual(layerWeights(one, 'block1_conv1'));
    expect(layerWeights(three, 'member1_head_predictions')).toEqual(layerWeights(one, 'head_predictions'));
    expect(layerWeights(three, 'member2_block1_conv1')[0]).not.toEqual(layerWeights(one, 'block1_conv1')[0]);
    expect(layerWeights(three, 'member3_block1_conv1')[0]).not.toEqual(layerWeights(three, 'member2_block1_conv1')[0]);

    const x = tf.randomUniform([3, 16, 16, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
    const perMember = memberLogits(three).map((output) => logits(functionalModel({ inputs: three.inputs, outputs: output }), x));
    const mean = (perMember[0] as number[]).map((_, i) => perMember.reduce((sum, m) => sum + (m[i] as number), 0) / 3);
    logits(three, x).forEach((value, i) => expect(value).toBeCloseTo(mean[i] as number, 5));
    expect(logits(three, x).slice(0, 4)).not.toEqual(logits(one, x).slice(0, 4));
    expect(modelSpecOf(three)?.members).toBe(3);
    // A single network's metadata is what it was before ensembles existed.
    expect(modelSpecOf(one)).not.toHaveProperty('members');
    x.dispose();
    [one, three].forEach((m) => m.dispose());
  });

  it('rejects a member count outside 1…8, naming it', () => {
    expect(() => buildModel({ ...single, members: 0 })).toThrow(ModelSpecError);
    expect(() => buildModel({ ...single, members: 9 })).toThrow(/members must be an integer 1…8, got 9/);
    expect(() => buildModel({ ...single, members: 2.5 })).toThrow(/got 2\.5/);
  });

  it('trains every member as if it trained alone on the same batches (SGD and Adam)', async () => {
    const train = quadrantImages(48, 16, 4, 3);
    for (const optimizer of ['sgd', 'adam'] as const) {
      const stage = testTrainingStage({ epochs: 1, batchSize: 16, optimizer, learningRate: optimizer === 'sgd' ? 0.05 : 3e-3, augmentation: { rotationDegrees: 5, scale: 0.05, horizontalFlip: true } });
      const alone = buildModel(single);
      const pair = buildModel({ ...single, members: 2 });
      const aloneRun = await trainModel({ model: alone, train, stage, seed: 11 });
      const pairRun = await trainModel({ model: pair, train, stage, seed: 11 });
      for (const name of ['block1_conv1', 'block4_bn2', 'head_fc1', 'head_predictions']) {
        const expected = layerWeights(alone, name);
        layerWeights(pair, `member1_${name}`).forEach((values, w) => values.forEach((v, i) => expect(v).toBeCloseTo(expected[w]?.[i] as number, 4)));
      }
      // The second member trained too, from its own start.
      expect(layerWeights(pair, 'member2_head_predictions')[0]).not.toEqual(layerWeights(buildModel({ ...single, members: 2 }), 'member2_head_predictions')[0]);
      // The reported loss is the members' mean: close to a single member's, not their sum.
      expect(pairRun.epochs[0]?.trainLoss).toBeLessThan(1.6 * (aloneRun.epochs[0]?.trainLoss as number));
      [alone, pair].forEach((m) => m.dispose());
    }
  }, 120_000);

  it('explains an ensemble of identical members exactly as the single network (grad-cam, hires-cam), and names every member layer', () => {
    const one = buildModel(single);
    const pair = buildModel({ ...single, members: 2 });
    for (const layer of one.layers) {
      if (layer.weights.length === 0) continue;
      pair.getLayer(`member2_${layer.name}`).setWeights(layer.getWeights());
    }
    const image = quadrantImages(1, 16, 4, 5).pixels;
    for (const method of ['grad-cam', 'hires-cam'] as const) {
      const alone = createGradCamExplainer(one, { method }).explain(image, 16);
      const together = createGradCamExplainer(pair, { method });
      expect(together.layerName).toBe('member1_block4_relu2+member2_block4_relu2');
      const result = together.explain(image, 16);
      expect(result.classIndex).toBe(alone.classIndex);
      result.probabilities.forEach((p, i) => expect(p).toBeCloseTo(alone.probabilities[i] as number, 5));
      result.heatmap.forEach((v, i) => expect(v).toBeCloseTo(alone.heatmap[i] as number, 4));
    }
    const named = createGradCamExplainer(pair, { lastConvLayerName: 'block3_relu2', method: 'grad-cam++' });
    expect(named.layerName).toBe('member1_block3_relu2+member2_block3_relu2');
    expect(named.explain(image, 16).heatmap.some((v) => v > 0)).toBe(true);
    [one, pair].forEach((m) => m.dispose());
  });

  it('saves and loads as one model, and refuses DETL fine-tuning of an ensemble', async () => {
    const pair = buildModel({ ...single, members: 2 });
    await saveModel(pair, join(dir, 'pair'));
    const loaded = await loadModel(join(dir, 'pair'));
    const x = tf.randomUniform([2, 16, 16, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
    expect(logits(loaded, x)).toEqual(logits(pair, x));
    expect(memberLogits(loaded)).toHaveLength(2);
    expect(modelSpecOf(loaded)?.members).toBe(2);
    expect(() => prepareForFineTuning(loaded, { numClasses: 4, freeze: 'below-last-conv-block' })).toThrow(CheckpointMismatchError);
    expect(() => prepareForFineTuning(loaded, { numClasses: 4, freeze: 'none' })).toThrow(/ensemble of 2 networks; fine-tuning with freeze 'none' needs one network/);
    const fresh = prepareForFineTuning(loaded, { numClasses: 3, freeze: 'scratch', seed: 1 });
    expect(memberLogits(fresh)).toHaveLength(2);
    expect(fresh.outputs[0]?.shape).toEqual([null, 3]);
    x.dispose();
    [pair, loaded, fresh].forEach((m) => m.dispose());
  });
});

