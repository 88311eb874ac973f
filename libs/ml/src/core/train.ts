import * as tf from '@tensorflow/tfjs-core';
import { model as functionalModel, type LayersModel } from '@tensorflow/tfjs-layers';
import type { AugmentationConfig, EpochMetrics, TrainingStageConfig } from '@detl/config';
import { assertLabelledImages, type LabelledImages } from './labelled-images';
import { memberLogits } from './models';
import { batchNormInTraining, installNativeTrainingKernels, nativeBatchNormAvailable } from './native-training-kernels';
import { SeededRandom } from './random';
import { classProbabilities, probabilitiesOf, type ScoringOptions } from './scoring';
import { classWeightsFor, decayedKernels, decayKernels, trainingLoss, type TrainingLevers } from './training-levers';

/**
 * Real-time augmentation of one training stage (the config's `augmentation`): each image draws a
 * rotation in [-rotationDegrees, rotationDegrees], a zoom in [1 - scale, 1 + scale] and, with
 * horizontalFlip, a mirror with probability 0.5.
 */
export type AugmentationOptions = AugmentationConfig;

/**
 * Recipe of one training stage: the experiment config's `pretrain` / `fineTune` settings. `epochs`
 * is the run's total (a resumed run counts the epochs already done); `cosine` anneals per step
 * from learningRate to 0 over all epochs of the run; momentum is SGD's (Adam ignores it). The
 * levers (`labelSmoothing`, `classWeighting`, `weightDecay`) may be left out: absent is off.
 */
export type TrainingStage = Omit<TrainingStageConfig, keyof TrainingLevers> & TrainingLevers;

// What one epoch achieved: the schema in @detl/config, which tracking and the dashboard read too.
export type { EpochMetrics };

/** Progress within an epoch. */
export interface BatchMetrics {
  epoch: number;
  /** 1-based batch number within the epoch. */
  batch: number;
  batches: number;
  loss: number;
  learningRate: number;
}

/** A copy of every weight of a model (trainable or not), in `model.weights` order. */
export interface WeightSnapshot {
  names: string[];
  shapes: number[][];
  values: Float32Array[];
}

/** The best weights seen, by validation accuracy. */
export interface BestWeights {
  epoch: number;
  validationAccuracy: number;
  weights: WeightSnapshot;
}

/** Inputs of {@link trainModel}. */
export interface TrainOptions {
  model: LayersModel;
  train: LabelledImages;
  validation?: LabelledImages;
  stage: TrainingStage;
  seed: number;
  /** Epochs already done (resume); training runs epochs startEpoch+1 … stage.epochs. */
  startEpoch?: number;
  /** Optimizer to continue with (e.g. restored Adam moments); a fresh one is made otherwise. */
  optimizer?: tf.Optimizer;
  /** Best weights of the epochs before startEpoch, so a resumed run only replaces them when it beats them. */
  previousBest?: BestWeights | null;
  /** After training, load the best-validation weights into the model (default true). */
  restoreBest?: boolean;
  onEpochEnd?: (metrics: EpochMetrics) => Promise<void> | void;
  onBatchEnd?: (metrics: BatchMetrics) => Promise<void> | void;
  /** Checked between batches; an abort rejects with an `AbortError`. */
  signal?: AbortSignal;
}

/** Outcome of {@link trainModel}. */
export interface TrainResult {
  epochs: EpochMetrics[];
  /** Best-validation weights, or null without validation data. */
  best: BestWeights | null;
  /** The optimizer, with its state, so the caller can save or continue it. */
  optimizer: tf.Optimizer;
}

/** Number of classes a model's output has (its last axis). */
export function outputClasses(model: LayersModel): number {
  const shape = model.outputs[0]?.shape;
  const classes = shape?.[shape.length - 1];
  if (typeof classes !== 'number') throw new Error(`model '${model.name}' has no fixed output size`);
  return classes;
}

function inputShape(model: LayersModel): { size: number; channels: number } {
  const shape = model.inputs[0]?.shape;
  const [, height, width, channels] = shape ?? [];
  if (typeof height !== 'number' || height !== width || typeof channels !== 'number') {
    throw new Error(`model '${model.name}' must take square NHWC images, has input shape ${JSON.stringify(shape)}`);
  }
  return { size: height, channels };
}

/**
 * Float batch [n, size, size, channels] of the given images, pixels divided by 255 so inputs lie
 * in [0, 1] (the scale every detl model is trained and evaluated on); greyscale is repeated into
 * every channel for 3-channel models.
 */
export function imagesToTensor(images: LabelledImages, indices: ArrayLike<number>, channels: number): tf.Tensor4D {
  const { size } = images;
  const plane = size * size;
  const values = new Float32Array(indices.length * plane * channels);
  for (let i = 0; i < indices.length; i += 1) {
    const offset = (indices[i] as number) * plane;
    const source = images.pixels.subarray(offset, offset + plane);
    const base = i * plane * channels;
    if (channels === 1) {
      for (let p = 0; p < plane; p += 1) values[base + p] = (source[p] as number) / 255;
    } else {
      for (let p = 0; p < plane; p += 1) {
        const v = (source[p] as number) / 255;
        for (let c = 0; c < channels; c += 1) values[base + p * channels + c] = v;
      }
    }
  }
  return tf.tensor4d(values, [indices.length, size, size, channels]);
}

/**
 * Random rotation about the centre, zoom, left-right mirroring and whole-pixel shift of a batch,
 * one draw per image from `rng`, applied with `tf.image.transform` (a kernel wasm has). Edge pixels
 * are replicated into the corners a rotation or shift uncovers, as Keras' `fill_mode='nearest'`
 * does. Without `translatePixels` no shift is drawn, so such a stage's draws are what they were
 * before the option existed.
 */
export function augmentBatch(x: tf.Tensor4D, rng: SeededRandom, augmentation: AugmentationOptions): tf.Tensor4D {
  const { rotationDegrees, scale, horizontalFlip } = augmentation;
  const translate = augmentation.translatePixels ?? 0;
  if (rotationDegrees === 0 && scale === 0 && !horizontalFlip && translate === 0) return tf.clone(x);
  const [n, height, width] = x.shape;
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  const transforms = new Float32Array(n * 8);
  for (let i = 0; i < n; i += 1) {
    const theta = (rng.uniform(-rotationDegrees, rotationDegrees) * Math.PI) / 180;
    const zoom = rng.uniform(1 - scale, 1 + scale);
    const flip = horizontalFlip && rng.next() < 0.5 ? -1 : 1;
    const dx = translate > 0 ? Math.floor(rng.next() * (2 * translate + 1)) - translate : 0;
    const dy = translate > 0 ? Math.floor(rng.next() * (2 * translate + 1)) - translate : 0;
    // The matrix maps output pixel coordinates to input coordinates (inverse warp); output pixel
    // (x, y) reads input (x - dx, y - dy) after the rotation, zoom and mirror about the centre.
    const a0 = (Math.cos(theta) * flip) / zoom;
    const a1 = -Math.sin(theta) / zoom;
    const b0 = (Math.sin(theta) * flip) / zoom;
    const b1 = Math.cos(theta) / zoom;
    transforms.set([a0, a1, cx - a0 * (cx + dx) - a1 * (cy + dy), b0, b1, cy - b0 * (cx + dx) - b1 * (cy + dy), 0, 0], i * 8);
  }
  return tf.tidy(() => tf.image.transform(x, tf.tensor2d(transforms, [n, 8]), 'bilinear', 'nearest'));
}

/** Learning rate at global step `step` of `totalSteps`. */
export function learningRateAt(stage: Pick<TrainingStage, 'learningRate' | 'schedule'>, step: number, totalSteps: number): number {
  if (stage.schedule === 'constant' || totalSteps <= 0) return stage.learningRate;
  return stage.learningRate * 0.5 * (1 + Math.cos((Math.PI * Math.min(step, totalSteps)) / totalSteps));
}

/** A fresh optimizer for a stage: Adam (tfjs defaults β1 0.9, β2 0.999, ε 1e-7) or SGD with momentum. */
export function createOptimizer(stage: Pick<TrainingStage, 'optimizer' | 'learningRate' | 'momentum'>): tf.Optimizer {
  if (stage.optimizer === 'adam') return tf.train.adam(stage.learningRate);
  return stage.momentum > 0 ? tf.train.momentum(stage.learningRate, stage.momentum) : tf.train.sgd(stage.learningRate);
}

function setLearningRate(optimizer: tf.Optimizer, rate: number): void {
  // SGD/Momentum cache the rate as a kept scalar, Adam reads its field on every update.
  const withSetter = optimizer as unknown as { setLearningRate?: (lr: number) => void; learningRate: number };
  if (typeof withSetter.setLearningRate === 'function') withSetter.setLearningRate(rate);
  else withSetter.learningRate = rate;
}

/** Copies every weight of a model out of the backend. */
export function snapshotWeights(model: LayersModel): WeightSnapshot {
  return {
    names: model.weights.map((w) => w.originalName),
    shapes: model.weights.map((w) => w.shape.map((d) => d ?? 0)),
    values: model.getWeights().map((t) => t.dataSync().slice() as Float32Array),
  };
}

/** Loads a {@link snapshotWeights} copy back into the same model. */
export function restoreWeights(model: LayersModel, snapshot: WeightSnapshot): void {
  if (snapshot.values.length !== model.weights.length) {
    throw new Error(`weight snapshot has ${snapshot.values.length} tensors, model '${model.name}' has ${model.weights.length}`);
  }
  const tensors = snapshot.values.map((values, i) => tf.tensor(values, snapshot.shapes[i]));
  try {
    model.setWeights(tensors);
  } finally {
    tf.dispose(tensors);
  }
}

const patchedBatchNorms = new WeakSet<object>();

/** The fields of tfjs-layers' BatchNormalization that the native training path reads. */
interface BatchNormLayerFields {
  axis: number;
  epsilon: number;
  momentum: number;
  center: boolean;
  scale: boolean;
  gamma: LayerVariableLike;
  beta: LayerVariableLike;
  movingMean: LayerVariableLike;
  movingVariance: LayerVariableLike;
}
interface LayerVariableLike {
  read(): tf.Tensor;
  write(value: tf.Tensor): unknown;
}

/**
 * tfjs-layers' training-mode BatchNormalization (moments, normalisation, moving averages) with
 * the statistics and normalisation done by {@link batchNormInTraining} (one native op forward,
 * one backward). Only for the per-channel NHWC case every detl model has; null otherwise, so the
 * caller falls back to tfjs-layers' own call.
 */
function nativeBatchNormTraining(layer: object, input: tf.Tensor): tf.Tensor | null {
  const bn = layer as BatchNormLayerFields;
  const axis = bn.axis >= 0 ? bn.axis : bn.axis + input.rank;
  if (input.rank !== 4 || axis !== 3 || !bn.center || !bn.scale) return null;
  return tf.tidy(() => {
    const { y, mean, variance } = batchNormInTraining(input, bn.gamma.read(), bn.beta.read(), bn.epsilon);
    // The same moving-average update tfjs-layers applies (value - (value - batch) * (1 - momentum)).
    const update = (variable: LayerVariableLike, batch: tf.Tensor): void => {
      const value = variable.read();
      variable.write(tf.sub(value, tf.mul(tf.sub(value, batch), 1 - bn.momentum)));
    };
    update(bn.movingMean, mean);
    update(bn.movingVariance, variance);
    tf.dispose([mean, variance]);
    return y;
  });
}

/**
 * Prepares a model's BatchNormalization layers for a training loop (idempotent, per layer):
 *
 * - tfjs-layers updates the moving statistics whenever a BN layer is called in training mode,
 *   trainable or not; Keras (TF2) runs a frozen BN in inference mode instead, and DETL's frozen
 *   layers must stay fixed. Non-trainable BN layers ignore `training: true` (checked per call, so
 *   re-enabling `trainable` restores the usual path).
 * - On the native `tensorflow` backend with {@link installNativeTrainingKernels} done, trainable BN
 *   layers in training mode run as one fused TF op forward and one backward
 *   ({@link batchNormInTraining}) instead of ~15 separate full-size passes; same results
 *   (tested against tfjs-layers' path).
 */
export function prepareBatchNormForTraining(model: LayersModel): void {
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization' || patchedBatchNorms.has(layer)) continue;
    const original = layer.call.bind(layer);
    layer.call = (inputs, kwargs) => {
      if (!layer.trainable) return original(inputs, { ...kwargs, training: false });
      const input = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
      if (kwargs['training'] === true && input && nativeBatchNormAvailable()) {
        const out = nativeBatchNormTraining(layer, input);
        if (out) return out;
      }
      return original(inputs, kwargs);
    };
    patchedBatchNorms.add(layer);
  }
}

function abortError(): Error {
  const error = new Error('training aborted');
  error.name = 'AbortError';
  return error;
}

/** What {@link evaluateModel} measured. */
export interface ModelEvaluation {
  /** Mean cross-entropy (never label-smoothed or class-weighted); with test-time flip, of the averaged probabilities. */
  loss: number;
  accuracy: number;
  /** The model's logits for the images as they are, image after image (count × classes). */
  logits: Float32Array;
  /** With `testTimeFlip`: the flip-averaged probabilities loss and accuracy were computed from (count × classes); null otherwise. */
  flipAveraged: Float32Array | null;
}

/**
 * Loss and accuracy of a model on a data set, in inference mode; with `testTimeFlip` both follow
 * the flip-averaged probabilities ({@link classProbabilities}).
 */
export function evaluateModel(model: LayersModel, data: LabelledImages, batchSize = 32, options: ScoringOptions = {}): ModelEvaluation {
  const { channels } = inputShape(model);
  const classes = outputClasses(model);
  const logits = new Float32Array(data.count * classes);
  const flipAveraged = options.testTimeFlip ? new Float32Array(data.count * classes) : null;
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < data.count; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, data.count - start) }, (_, i) => start + i);
    const labels = data.labels.subarray(start, start + indices.length);
    if (flipAveraged) {
      const [batchLogits, batchProbabilities] = tf.tidy(() => {
        const x = imagesToTensor(data, indices, channels);
        const out = model.predict(x) as tf.Tensor2D;
        return [out.dataSync() as Float32Array, probabilitiesOf(model, x, out, options).dataSync() as Float32Array];
      });
      logits.set(batchLogits, start * classes);
      flipAveraged.set(batchProbabilities, start * classes);
      for (let i = 0; i < indices.length; i += 1) {
        const label = labels[i] as number;
        lossSum -= Math.log(Math.max(batchProbabilities[i * classes + label] as number, Number.MIN_VALUE));
        if (argMax(batchProbabilities, i * classes, classes) === label) correct += 1;
      }
      continue;
    }
    const [batchLogits, batchLoss] = tf.tidy(() => {
      const x = imagesToTensor(data, indices, channels);
      const out = model.predict(x) as tf.Tensor2D;
      const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), classes);
      const loss = tf.losses.softmaxCrossEntropy(oneHot, out, undefined, undefined, tf.Reduction.SUM);
      return [out.dataSync() as Float32Array, loss.dataSync()[0] as number];
    });
    logits.set(batchLogits, start * classes);
    lossSum += batchLoss;
    for (let i = 0; i < indices.length; i += 1) {
      if (argMax(batchLogits, i * classes, classes) === labels[i]) correct += 1;
    }
  }
  return { loss: data.count > 0 ? lossSum / data.count : NaN, accuracy: data.count > 0 ? correct / data.count : NaN, logits, flipAveraged };
}

/**
 * Softmax class probabilities of a model for unlabelled images (pixels / 255, as in training),
 * one array of numClasses per image; with `testTimeFlip`, averaged with the mirrored images'.
 */
export function predictProbabilities(model: LayersModel, images: Omit<LabelledImages, 'labels'>, batchSize = 32, options: ScoringOptions = {}): number[][] {
  const { size, channels } = inputShape(model);
  if (images.size !== size) throw new Error(`images are ${images.size}x${images.size} px, the model takes ${size}x${size}`);
  if (images.pixels.length !== images.count * size * size) {
    throw new Error(`${images.pixels.length} pixel bytes, expected count*size*size = ${images.count * size * size}`);
  }
  const rows: number[][] = [];
  for (let start = 0; start < images.count; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, images.count - start) }, (_, i) => start + i);
    const batch = tf.tidy(() => classProbabilities(model, imagesToTensor({ ...images, labels: new Int32Array(0) }, indices, channels), options).arraySync());
    rows.push(...batch);
  }
  return rows;
}

function argMax(values: Float32Array, offset: number, length: number): number {
  let best = 0;
  for (let c = 1; c < length; c += 1) if ((values[offset + c] as number) > (values[offset + best] as number)) best = c;
  return best;
}

/**
 * Trains a model with a custom loop: per-epoch seeded shuffling, seeded real-time augmentation,
 * softmax cross-entropy on the logits against one-hot labels (a product, so no gather gradient
 * is needed on wasm), Adam or SGD+momentum with a per-step cosine schedule spanning the whole
 * run, validation after each epoch, and the best-validation weights kept.
 *
 * The stage's levers: `labelSmoothing` smooths the targets and `classWeighting: 'balanced'`
 * weights each image's loss by its class's `balancedClassWeights` on `train`
 * ({@link trainingLoss}; the reported train loss is this loss, train accuracy is unweighted);
 * `weightDecay` shrinks the trainable kernels every step ({@link decayKernels}). Validation is
 * scored without any of them, and without test-time flips.
 *
 * An ensemble model (`members` > 1 in its spec) trains each member on its own loss over the same
 * batches (their sum is differentiated, their mean reported); train accuracy is the ensemble's.
 *
 * Pixels are divided by 255. Only weights whose layer is `trainable` are updated. Every batch
 * runs inside `tf.tidy`, so the tensor count is flat across epochs.
 * @throws an `AbortError` when `signal` aborts (between batches), or when the data does not fit
 * the model (image size, label range).
 */
export async function trainModel(options: TrainOptions): Promise<TrainResult> {
  const { model, train, validation, stage, seed, signal } = options;
  const startEpoch = options.startEpoch ?? 0;
  const { size, channels } = inputShape(model);
  const classes = outputClasses(model);
  checkData(train, 'train', size, classes);
  if (validation) checkData(validation, 'validation', size, classes);
  if (!(stage.batchSize >= 1) || !(stage.epochs >= 1)) throw new Error(`batchSize ${stage.batchSize} and epochs ${stage.epochs} must be ≥ 1`);
  if (startEpoch < 0 || startEpoch > stage.epochs) throw new Error(`startEpoch ${startEpoch} is outside 0…${stage.epochs}`);
  if (train.count === 0) throw new Error('train: no images');
  if (train.count < classes) throw new Error(`train: ${train.count} images for ${classes} classes; every class needs at least one image`);

  installNativeTrainingKernels();
  prepareBatchNormForTraining(model);
  const optimizer = options.optimizer ?? createOptimizer(stage);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  if (variables.length === 0) throw new Error(`model '${model.name}' has no trainable weights`);
  const labelSmoothing = stage.labelSmoothing ?? 0;
  const weightDecay = stage.weightDecay ?? 0;
  const classWeights = classWeightsFor(stage.classWeighting, train.labels, classes);
  const kernels = weightDecay > 0 ? decayedKernels(model) : [];
  const stepsPerEpoch = Math.ceil(train.count / stage.batchSize);
  const totalSteps = stepsPerEpoch * stage.epochs;
  const memberOutputs = memberLogits(model);
  const members = memberOutputs.length;
  // Wraps the model's own graph nodes (no layers, no weights of its own), so it is never disposed.
  const membersView = members > 1 ? functionalModel({ inputs: model.inputs, outputs: memberOutputs }) : null;
  const history: EpochMetrics[] = [];
  let best: BestWeights | null = options.previousBest ?? null;

  for (let epoch = startEpoch + 1; epoch <= stage.epochs; epoch += 1) {
    const started = performance.now();
    const order = SeededRandom.forEpoch(seed, epoch, 1).permutation(train.count);
    const augmentRng = SeededRandom.forEpoch(seed, epoch, 2);
    const epochRate = learningRateAt(stage, (epoch - 1) * stepsPerEpoch, totalSteps);
    let lossSum = 0;
    let correct = 0;
    for (let batch = 0; batch < stepsPerEpoch; batch += 1) {
      if (signal?.aborted) throw abortError();
      const step = (epoch - 1) * stepsPerEpoch + batch;
      const rate = learningRateAt(stage, step, totalSteps);
      setLearningRate(optimizer, rate);
      const indices = order.subarray(batch * stage.batchSize, Math.min((batch + 1) * stage.batchSize, train.count));
      const labels = Int32Array.from(indices, (i) => train.labels[i] as number);
      const { loss, predicted } = tf.tidy(() => {
        const raw = imagesToTensor(train, indices, channels);
        const x = augmentBatch(raw, augmentRng, stage.augmentation);
        const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), classes);
        const weights = classWeights ? tf.tensor1d(Float32Array.from(labels, (label) => classWeights[label] as number)) : null;
        let kept: tf.Tensor | null = null;
        // optimizer.minimize's own steps, with the decoupled weight decay between gradient and update.
        const { value: cost, grads } = optimizer.computeGradients(() => {
          if (!membersView) {
            const logits = model.apply(x, { training: true }) as tf.Tensor2D;
            kept = tf.keep(tf.argMax(logits, 1));
            return trainingLoss(oneHot as tf.Tensor2D, logits, labelSmoothing, weights);
          }
          // An ensemble: the sum of the members' own losses, so each member's gradient (and with it
          // any optimizer's step) is the one it would get training alone on these batches.
          const logits = membersView.apply(x, { training: true }) as tf.Tensor2D[];
          kept = tf.keep(tf.argMax(tf.addN(logits), 1));
          return tf.addN(logits.map((memberLogits) => trainingLoss(oneHot as tf.Tensor2D, memberLogits, labelSmoothing, weights))) as tf.Scalar;
        }, variables);
        decayKernels(kernels, rate, weightDecay);
        optimizer.applyGradients(variables.map((variable) => ({ name: variable.name, tensor: grads[variable.name] as tf.Tensor })));
        const predictedTensor = kept as unknown as tf.Tensor;
        // An ensemble reports its members' mean loss.
        const result = { loss: (cost.dataSync()[0] as number) / members, predicted: predictedTensor.dataSync().slice() as Int32Array };
        predictedTensor.dispose();
        return result;
      });
      if (!Number.isFinite(loss)) throw new Error(`training diverged: loss ${loss} at epoch ${epoch}, batch ${batch + 1}`);
      lossSum += loss * indices.length;
      predicted.forEach((p, i) => {
        if (p === labels[i]) correct += 1;
      });
      await options.onBatchEnd?.({ epoch, batch: batch + 1, batches: stepsPerEpoch, loss, learningRate: rate });
      // Lets IPC messages, timers and abort events through between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const trainSeconds = (performance.now() - started) / 1000;
    const evaluation = validation && validation.count > 0 ? evaluateModel(model, validation, stage.batchSize * 2) : null;
    const metrics: EpochMetrics = {
      epoch,
      trainLoss: lossSum / train.count,
      trainAccuracy: correct / train.count,
      validationLoss: evaluation?.loss ?? null,
      validationAccuracy: evaluation?.accuracy ?? null,
      learningRate: epochRate,
      durationMs: performance.now() - started,
      imagesPerSecond: train.count / trainSeconds,
    };
    if (evaluation && (best === null || evaluation.accuracy > best.validationAccuracy)) {
      best = { epoch, validationAccuracy: evaluation.accuracy, weights: snapshotWeights(model) };
    }
    history.push(metrics);
    await options.onEpochEnd?.(metrics);
  }
  if ((options.restoreBest ?? true) && best) restoreWeights(model, best.weights);
  return { epochs: history, best, optimizer };
}

function checkData(data: LabelledImages, what: string, size: number, classes: number): void {
  assertLabelledImages(data, what);
  if (data.size !== size) throw new Error(`${what}: images are ${data.size}x${data.size} px, the model takes ${size}x${size}`);
  for (let i = 0; i < data.count; i += 1) {
    const label = data.labels[i] as number;
    if (!Number.isInteger(label) || label < 0 || label >= classes) {
      throw new Error(`${what}: label ${label} of image ${i} is outside 0…${classes - 1} (the model has ${classes} outputs)`);
    }
  }
}
