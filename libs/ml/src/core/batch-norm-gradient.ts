import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';

let installed = false;

/**
 * Replaces tfjs' `FusedBatchNorm` gradient for the per-channel case (a rank-1 mean, which is
 * what every BatchNormalization layer here produces) with one that broadcasts instead of tiling.
 *
 * Why: the stock gradient tiles 1/√(var+ε) to the full activation shape and multiplies full-size
 * tensors once per input gradient (≈10 full-size passes per BN layer); profiled on a ResNet-50
 * training step on wasm, `Tile` alone took as long as all conv filter gradients. Here each input
 * gradient costs at most one full-size multiply and one reduction. Other cases (mean of the same
 * rank as x) keep the stock gradient. Backend-independent; idempotent.
 * @returns whether it was installed by this call.
 */
export function installBatchNormGradient(): boolean {
  if (installed) return false;
  const stock = tf.getGradient('FusedBatchNorm');
  if (!stock) throw new Error("tfjs has no FusedBatchNorm gradient to replace; import '@tensorflow/tfjs-layers' first");
  const config: GradConfig = {
    kernelName: 'FusedBatchNorm',
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
      const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
      const grad = dy as tf.Tensor;
      if (mean.rank !== 1 || x.rank < 2) return stock.gradFunc(dy, saved, attrs);
      const epsilon = attrs['varianceEpsilon'] as number;
      // Every axis but the channel axis (the last one, NHWC) is reduced.
      const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
      const inverse = () => tf.rsqrt(tf.add(variance, epsilon));
      const scaled = (t: tf.Tensor) => (scale == null ? t : tf.mul(t, scale));
      const dyDotCentred = () => tf.sum(tf.mul(grad, tf.sub(x, mean)), axes);
      return {
        x: () => tf.mul(grad, scaled(inverse())),
        mean: () => tf.neg(tf.mul(tf.sum(grad, axes), scaled(inverse()))),
        variance: () => {
          const inv = inverse();
          return tf.mul(dyDotCentred(), scaled(tf.mul(tf.mul(tf.mul(inv, inv), inv), -0.5)));
        },
        scale: () => tf.mul(dyDotCentred(), inverse()),
        offset: () => tf.sum(grad, axes),
      };
    },
  };
  tf.registerGradient(config);
  installed = true;
  return true;
}
