import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { FreezeMode } from '@detl/config';
import { buildModel, describeArchitecture, modelSpecOf, type Architecture, type ModelSpec } from './models';

// The modes are the config schema's `fineTune.freeze` values.
export type { FreezeMode };

/** Options of {@link prepareForFineTuning}. */
export interface FineTuneOptions {
  /** Outputs of the new last dense layer (4 for Data-B). */
  numClasses: number;
  freeze: FreezeMode;
  /** The architecture the experiment expects; a checkpoint of another one is rejected. */
  architecture?: Architecture;
  /** Seeds the new head (and, for `scratch`, every layer). */
  seed?: number;
}

/** Raised when a checkpoint's architecture or shape does not fit what is asked of it. */
export class CheckpointMismatchError extends Error {
  override readonly name = 'CheckpointMismatchError';
}

/**
 * Throws {@link CheckpointMismatchError} naming both architectures when a checkpoint is not the
 * expected family (e.g. a ResNet-50 checkpoint offered to a VGG-16 experiment).
 * @returns the checkpoint's spec.
 */
export function assertArchitecture(model: LayersModel, expected: Architecture | undefined, origin = 'checkpoint'): ModelSpec {
  const spec = modelSpecOf(model);
  if (!spec) {
    throw new CheckpointMismatchError(`${origin} (model '${model.name}') carries no detl architecture metadata; expected ${expected ?? 'a detl model'}`);
  }
  if (expected && spec.architecture !== expected) {
    throw new CheckpointMismatchError(`${origin} is a ${spec.architecture} model, but the experiment expects ${expected}`);
  }
  return spec;
}

/**
 * DETL surgery: a new model of the pretrained network's family and input shape whose every
 * layer but the last dense one carries the pretrained weights (copied, so the pretrained model
 * may be disposed), a freshly initialised `head_predictions` with `numClasses` outputs, and
 * `trainable` set per mode:
 * - `below-last-conv-block` (the paper): everything before the last conv block is frozen;
 * - `all-but-head`: only the dense head trains;
 * - `none`: everything trains;
 * - `scratch`: the pretrained weights are ignored, a fresh model of the same spec trains fully.
 *
 * Frozen batch-norm layers also keep their moving statistics (trainModel runs them in inference
 * mode), so a frozen layer is bit-for-bit unchanged by training.
 * @throws CheckpointMismatchError when the pretrained model is not of `architecture`.
 */
export function prepareForFineTuning(pretrained: LayersModel, options: FineTuneOptions): LayersModel {
  const spec = assertArchitecture(pretrained, options.architecture, 'pretrained model');
  const target: ModelSpec = { ...spec, numClasses: options.numClasses, ...(options.seed === undefined ? {} : { seed: options.seed }) };
  if ((spec.members ?? 1) > 1 && options.freeze !== 'scratch') {
    throw new CheckpointMismatchError(`pretrained model is an ensemble of ${spec.members} networks; fine-tuning with freeze '${options.freeze}' needs one network`);
  }
  const model = buildModel(target);
  if (options.freeze === 'scratch') return model;

  const description = describeArchitecture(model);
  for (const layer of model.layers) {
    if (layer.name === description.predictionLayer || layer.weights.length === 0) continue;
    const source = pretrained.layers.find((candidate) => candidate.name === layer.name);
    if (!source) throw new CheckpointMismatchError(`pretrained ${spec.architecture} model has no layer '${layer.name}'`);
    const shapes = source.weights.map((w) => w.shape.join('x'));
    const expected = layer.weights.map((w) => w.shape.join('x'));
    if (shapes.join(',') !== expected.join(',')) {
      throw new CheckpointMismatchError(`layer '${layer.name}' has weights ${shapes.join(', ')} in the checkpoint but ${expected.join(', ')} in the model`);
    }
    layer.setWeights(source.getWeights());
  }

  const frozen = new Set<string>();
  if (options.freeze === 'below-last-conv-block') {
    for (const name of model.layers.map((l) => l.name)) {
      if (!description.lastConvBlock.includes(name) && !description.head.includes(name)) frozen.add(name);
    }
  } else if (options.freeze === 'all-but-head') {
    for (const name of model.layers.map((l) => l.name)) if (!description.head.includes(name)) frozen.add(name);
  }
  for (const layer of model.layers) layer.trainable = !frozen.has(layer.name);
  return model;
}
