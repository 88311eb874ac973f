import type { LayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { prepareForFineTuning, type FreezeMode } from './fine-tune';
import { buildModel, describeArchitecture, type Architecture } from './models';
import { quadrantImages } from './test-data';
import { trainModel, type TrainingStage } from './train';
import { initBackendUnderTest } from '../test-support/backend-under-test';

const sgd: TrainingStage = {
  epochs: 1,
  batchSize: 8,
  optimizer: 'sgd',
  // Far above the paper's 1e-4 so that three steps visibly move every trainable weight.
  learningRate: 0.05,
  momentum: 0.9,
  schedule: 'constant',
  augmentation: { rotationDegrees: 5, scale: 0.05, horizontalFlip: true },
};

function layerWeights(model: LayersModel): Map<string, Float32Array[]> {
  return new Map(model.layers.map((layer) => [layer.name, layer.getWeights().map((w) => w.dataSync().slice() as Float32Array)]));
}

function same(a: Float32Array[] | undefined, b: Float32Array[] | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return a.every((values, i) => {
    const other = b[i] as Float32Array;
    return values.length === other.length && values.every((v, j) => Object.is(v, other[j]));
  });
}

async function fineTune(architecture: Architecture, freeze: FreezeMode, size: number) {
  const pretrained = buildModel({ architecture, widthMultiplier: architecture === 'resnet50' ? 0.0625 : 0.5, imageSize: size, channels: 1, numClasses: 2, seed: 1 });
  const model = prepareForFineTuning(pretrained, { numClasses: 4, freeze, architecture, seed: 2 });
  const start = layerWeights(model);
  const original = layerWeights(pretrained);
  const result = await trainModel({ model, train: quadrantImages(24, size, 4, 3), stage: sgd, seed: 4 });
  result.optimizer.dispose();
  return { model, pretrained, start, original, end: layerWeights(model), description: describeArchitecture(model) };
}

describe('prepareForFineTuning', () => {
  beforeAll(async () => {
    await initBackendUnderTest();
  });

  it('DETL: base copied, new 4-class head, frozen layers bit-for-bit unchanged, the rest trained', async () => {
    const { model, pretrained, start, original, end, description } = await fineTune('small-vgg', 'below-last-conv-block', 16);
    expect(model.outputs[0]?.shape).toEqual([null, 4]);
    for (const name of [...description.belowLastConvBlock, ...description.lastConvBlock, 'head_fc1']) {
      if ((original.get(name) ?? []).length === 0) continue;
      expect(same(start.get(name), original.get(name)), `${name} copied`).toBe(true);
    }
    expect(description.belowLastConvBlock.length).toBeGreaterThan(0);
    for (const name of description.belowLastConvBlock) expect(same(end.get(name), start.get(name)), `${name} frozen`).toBe(true);
    for (const name of ['block4_conv1', 'block4_conv2', 'head_fc1', 'head_predictions']) {
      expect(same(end.get(name), start.get(name)), `${name} trained`).toBe(false);
    }
    model.dispose();
    pretrained.dispose();
  }, 30_000);

  it('freezes batch-norm statistics too (ResNet-50)', async () => {
    const { model, pretrained, start, end, description } = await fineTune('resnet50', 'below-last-conv-block', 32);
    expect(description.belowLastConvBlock).toContain('block4_f_3_bn');
    for (const name of description.belowLastConvBlock) expect(same(end.get(name), start.get(name)), `${name} frozen`).toBe(true);
    expect(same(end.get('block5_c_3_conv'), start.get('block5_c_3_conv'))).toBe(false);
    // Trainable BN layers do update their moving statistics.
    expect(same(end.get('block5_c_3_bn'), start.get('block5_c_3_bn'))).toBe(false);
    model.dispose();
    pretrained.dispose();
  }, 60_000);

  it('all-but-head trains only the head; none trains everything', async () => {
    const head = await fineTune('small-vgg', 'all-but-head', 16);
    expect(same(head.end.get('block4_conv2'), head.start.get('block4_conv2'))).toBe(true);
    expect(same(head.end.get('head_fc1'), head.start.get('head_fc1'))).toBe(false);
    const all = await fineTune('small-vgg', 'none', 16);
    expect(same(all.end.get('block1_conv1'), all.start.get('block1_conv1'))).toBe(false);
    [head, all].forEach((r) => {
      r.model.dispose();
      r.pretrained.dispose();
    });
  }, 30_000);

  it('scratch ignores the pretrained weights but keeps the architecture', async () => {
    const pretrained = buildModel({ architecture: 'small-vgg', widthMultiplier: 0.5, imageSize: 16, channels: 1, numClasses: 2, seed: 1 });
    const model = prepareForFineTuning(pretrained, { numClasses: 4, freeze: 'scratch', seed: 9 });
    const reference = buildModel({ architecture: 'small-vgg', widthMultiplier: 0.5, imageSize: 16, channels: 1, numClasses: 4 });
    expect(model.countParams()).toBe(reference.countParams());
    expect(same(layerWeights(model).get('block1_conv1'), layerWeights(pretrained).get('block1_conv1'))).toBe(false);
    // Everything trains (batch-norm moving statistics are never trainable weights).
    expect(model.trainableWeights.length).toBe(reference.trainableWeights.length);
    expect(model.trainableWeights.length).toBeGreaterThan(0);
    [model, pretrained, reference].forEach((m) => m.dispose());
  });

  it('rejects a checkpoint of another architecture, naming both', () => {
    const resnet = buildModel({ architecture: 'resnet50', widthMultiplier: 0.0625, imageSize: 32, channels: 1, numClasses: 2 });
    expect(() => prepareForFineTuning(resnet, { numClasses: 4, freeze: 'below-last-conv-block', architecture: 'vgg16' })).toThrow(
      /pretrained model is a resnet50 model, but the experiment expects vgg16/,
    );
    resnet.dispose();
  });
});
