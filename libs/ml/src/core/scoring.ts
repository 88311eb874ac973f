// How a trained model turns images into class probabilities. Node-free (tfjs only), so the
// dashboard's browser screening scores exactly as `detl predict` and the held-out folds do.
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';

/** How a trained model scores images (the experiment config's `evaluation` section). */
export interface ScoringOptions {
  /** Average the softmax of each image and of its left-right mirror (default false). */
  testTimeFlip?: boolean;
}

/**
 * Class probabilities of a batch in inference mode: the softmax of the model's output or, with
 * `testTimeFlip`, the mean of the softmax of `x` and of `tf.reverse(x, 2)` (each image mirrored
 * left-right). The one place detl averages over flips; every scorer of images calls it.
 */
export function classProbabilities(model: LayersModel, x: tf.Tensor4D, options: ScoringOptions = {}): tf.Tensor2D {
  return tf.tidy(() => probabilitiesOf(model, x, model.predict(x) as tf.Tensor2D, options));
}

/** {@link classProbabilities} given the model's logits for `x`, computed already. */
export function probabilitiesOf(model: LayersModel, x: tf.Tensor4D, logits: tf.Tensor2D, options: ScoringOptions): tf.Tensor2D {
  const plain = tf.softmax(logits);
  if (!options.testTimeFlip) return plain;
  const mirrored = tf.softmax(model.predict(tf.reverse(x, 2)) as tf.Tensor2D);
  return tf.div(tf.add(plain, mirrored), 2);
}
