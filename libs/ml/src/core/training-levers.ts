import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { ClassWeighting, TrainingStageConfig } from '@detl/config';

/**
 * The regularising levers of a training stage (the config's `labelSmoothing`, `classWeighting`,
 * `weightDecay`). Absent ones are off, so a stage written by hand without them trains as before.
 */
export type TrainingLevers = Partial<Pick<TrainingStageConfig, 'labelSmoothing' | 'classWeighting' | 'weightDecay'>>;

/**
 * scikit-learn's `balanced` class weights of a training set: n_total / (n_classes · n_class) for
 * every class with images, so the weights average 1 over the set. n_classes counts the classes
 * present; a class without images gets weight 0 (no image of it ever uses it).
 * @returns one weight per class index 0 … classes − 1.
 */
export function balancedClassWeights(labels: ArrayLike<number>, classes: number): Float32Array {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i += 1) {
    const label = labels[i] as number;
    if (label >= 0 && label < classes) counts[label] = (counts[label] as number) + 1;
  }
  const present = counts.filter((count) => count > 0).length;
  return Float32Array.from(counts, (count) => (count > 0 ? labels.length / (present * count) : 0));
}

/**
 * Per-class loss weights of a stage's class weighting on a training set, or null when every
 * image weighs the same (`none`, the default).
 */
export function classWeightsFor(weighting: ClassWeighting | undefined, labels: ArrayLike<number>, classes: number): Float32Array | null {
  return weighting === 'balanced' ? balancedClassWeights(labels, classes) : null;
}

/**
 * The training loss of one batch: softmax cross-entropy on the logits against the one-hot labels,
 * the targets smoothed Keras-style (`onehot·(1 − ε) + ε / classes`, tfjs' own `labelSmoothing`)
 * and, with per-image `weights`, the weighted mean Σ wᵢ·lossᵢ / Σ wᵢ. Without smoothing and
 * weights it is exactly the plain mean cross-entropy trainModel has always used.
 */
export function trainingLoss(oneHot: tf.Tensor2D, logits: tf.Tensor2D, labelSmoothing: number, weights: tf.Tensor1D | null): tf.Scalar {
  if (weights === null) {
    return labelSmoothing > 0 ? tf.losses.softmaxCrossEntropy(oneHot, logits, undefined, labelSmoothing) : tf.losses.softmaxCrossEntropy(oneHot, logits);
  }
  return tf.losses.softmaxCrossEntropy(oneHot, logits, weights, labelSmoothing, tf.Reduction.MEAN);
}

/**
 * The trainable variables decoupled weight decay shrinks: conv and dense kernels (`…/kernel`),
 * never biases or batch-norm gamma / beta.
 */
export function decayedKernels(model: LayersModel): tf.Variable[] {
  return model.trainableWeights.filter((weight) => /(^|\/)kernel$/.test(weight.originalName)).map((weight) => weight.read() as tf.Variable);
}

/**
 * Decoupled weight decay of one step: every kernel becomes kernel·(1 − rate·decay), with plain
 * tf ops and `assign` (deterministic on every backend). trainModel calls it between computing a
 * step's gradients and applying them, so the update is θ ← θ·(1 − lr_t·λ) − lr_t·u(∇θ) with the
 * gradient taken at the undecayed θ: the order of PyTorch's AdamW and Keras' `weight_decay`.
 */
export function decayKernels(kernels: readonly tf.Variable[], rate: number, decay: number): void {
  if (decay <= 0 || kernels.length === 0) return;
  tf.tidy(() => {
    const factor = tf.scalar(1 - rate * decay);
    for (const kernel of kernels) kernel.assign(tf.mul(kernel, factor));
  });
}
