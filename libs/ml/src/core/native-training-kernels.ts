import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

/**
 * The part of tfjs-node's `NodeJSKernelBackend` these kernels use: running one TensorFlow eager
 * op by its TF name. Typed here because tfjs-node is an optional dependency.
 */
interface NativeBackend {
  binding: { TF_ATTR_TYPE: number; TF_ATTR_FLOAT: number; TF_ATTR_BOOL: number; TF_ATTR_STRING: number; TF_FLOAT: number };
  executeSingleOutput(name: string, attrs: NativeAttr[], inputs: TensorInfo[]): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: NativeAttr[], inputs: TensorInfo[], outputs: number): tf.Tensor[];
}
interface NativeAttr {
  name: string;
  type: number;
  value: unknown;
}

const NATIVE = 'tensorflow';
/** Batch-statistics batch norm forward, one TF `FusedBatchNormV3` (is_training) op. */
export const BATCH_NORM_TRAINING_KERNEL = 'DetlBatchNormTraining';
/** Its gradient, one TF `FusedBatchNormGradV3` (is_training) op. */
export const BATCH_NORM_TRAINING_GRAD_KERNEL = 'DetlBatchNormTrainingGrad';
/** The ReLU gradient as one TF `ReluGrad` op. */
export const RELU_GRAD_KERNEL = 'DetlReluGrad';

let installedKernels: string[] | null = null;

function floatType(b: NativeBackend, ...names: string[]): NativeAttr[] {
  return names.map((name) => ({ name, type: b.binding.TF_ATTR_TYPE, value: b.binding.TF_FLOAT }));
}

function batchNormAttrs(b: NativeBackend, epsilon: number): NativeAttr[] {
  return [
    ...floatType(b, 'T', 'U'),
    { name: 'epsilon', type: b.binding.TF_ATTR_FLOAT, value: epsilon },
    { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'is_training', type: b.binding.TF_ATTR_BOOL, value: true },
  ];
}

function stepKernel(stock: KernelFunc): KernelFunc {
  // tfjs-node's Step (the ReLU gradient's mask, also inside fused conv+ReLU gradients) runs
  // isNaN, greater, two full-size fills and two selects: ~12 ms on a 2M-element activation
  // where a multiply takes 1 ms. For alpha 0, sign(relu(x)) is the same function (1 for x > 0,
  // 0 otherwise, NaN stays NaN because TF's Relu propagates NaN) in two cheap passes.
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype !== 'float32' || (args.attrs?.['alpha'] ?? 0) !== 0) return stock(args);
    const b = args.backend as unknown as NativeBackend;
    const relu = b.executeSingleOutput('Relu', floatType(b, 'T'), [x]);
    const mask = b.executeSingleOutput('Sign', floatType(b, 'T'), [relu]);
    relu.dispose();
    return mask;
  };
}

const reluGrad: KernelFunc = (args) => {
  const { dy, x } = args.inputs as { dy: TensorInfo; x: TensorInfo };
  const b = args.backend as unknown as NativeBackend;
  return b.executeSingleOutput('ReluGrad', floatType(b, 'T'), [dy, x]);
};

/**
 * tfjs' ReLU gradient is dy·step(x): a Step (two passes here, twelve with tfjs-node's own) and a
 * multiply over the activation, where TF has one `ReluGrad` pass. It also serves conv layers with
 * a ReLU, which tfjs-layers runs unfused (conv, bias add, Relu) whenever gradients are recorded.
 * Only difference: a NaN activation gets gradient 0 instead of NaN (TF's rule); the loss is NaN
 * then anyway and trainModel stops on it.
 */
function installReluGradient(): void {
  const stock = tf.getGradient('Relu');
  if (!stock) throw new Error("tfjs has no Relu gradient to replace; import '@tensorflow/tfjs-layers' first");
  tf.registerGradient({
    kernelName: 'Relu',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      if (tf.getBackend() !== NATIVE || x.dtype !== 'float32') return stock.gradFunc(dy, saved, attrs);
      return { x: () => tf.engine().runKernel(RELU_GRAD_KERNEL, { dy: dy as tf.Tensor, x }) as tf.Tensor };
    },
  });
}

/** What `FusedBatchNormV3` returns in training mode: y, batch mean, variance and the three reserve tensors its gradient takes. */
type BatchNormTrainingOutputs = [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];

const batchNormTraining: KernelFunc = (args) => {
  const { x, scale, offset } = args.inputs as { x: TensorInfo; scale: TensorInfo; offset: TensorInfo };
  const epsilon = (args.attrs as NamedAttrMap)['epsilon'] as number;
  const b = args.backend as unknown as NativeBackend;
  const channels = x.shape[x.shape.length - 1] as number;
  // Running mean/variance inputs are ignored in training mode (exponential_avg_factor 1) but must
  // have the channel shape.
  const unused = tf.zeros([channels]);
  const [y, mean, besselVariance, reserve1, reserve2, reserve3] = b.executeMultipleOutputs('FusedBatchNormV3', batchNormAttrs(b, epsilon), [x, scale, offset, unused, unused], 6) as BatchNormTrainingOutputs;
  unused.dispose();
  // TF reports the Bessel-corrected variance for the running average; tfjs-layers (and the
  // normalisation itself) use the biased one, so scale it back to keep the moving statistics as before.
  const n = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
  const factor = tf.scalar(n > 1 ? (n - 1) / n : 1);
  const variance = b.executeSingleOutput('Mul', floatType(b, 'T'), [besselVariance, factor]);
  tf.dispose([factor, besselVariance]);
  return [y, mean, variance, reserve1, reserve2, reserve3];
};

const batchNormTrainingGrad: KernelFunc = (args) => {
  const { dy, x, scale, reserve1, reserve2, reserve3 } = args.inputs as Record<'dy' | 'x' | 'scale' | 'reserve1' | 'reserve2' | 'reserve3', TensorInfo>;
  const epsilon = (args.attrs as NamedAttrMap)['epsilon'] as number;
  const b = args.backend as unknown as NativeBackend;
  const outputs = b.executeMultipleOutputs('FusedBatchNormGradV3', batchNormAttrs(b, epsilon), [dy, x, scale, reserve1, reserve2, reserve3], 5);
  const [dx, dScale, dOffset, ...rest] = outputs as [tf.Tensor, tf.Tensor, tf.Tensor, ...tf.Tensor[]];
  tf.dispose(rest);
  return [dx, dScale, dOffset];
};

/**
 * Registers detl's kernels for tfjs-node's `tensorflow` backend, which let a training step
 * dispatch fewer, native ops: the ReLU gradient as one `ReluGrad` (a replaced `Relu` gradient
 * that falls back to tfjs' own on other backends), a `Step` (the mask inside fused conv+ReLU
 * gradients) without full-size fills and selects, and the batch-statistics batch norm
 * forward/backward as single `FusedBatchNormV3` / `FusedBatchNormGradV3` ops (used by
 * {@link batchNormInTraining}).
 *
 * Must run after `@tensorflow/tfjs-node` registered its own kernels (it replaces its `Step`);
 * a no-op on any other backend. Idempotent.
 * @returns the kernels registered for the `tensorflow` backend (empty on other backends).
 */
export function installNativeTrainingKernels(): string[] {
  if (installedKernels) return installedKernels;
  if (tf.getBackend() !== NATIVE) return [];
  const stockStep = tf.getKernel('Step', NATIVE);
  if (!stockStep) throw new Error("the 'tensorflow' backend has no Step kernel; is @tensorflow/tfjs-node loaded?");
  const configs: KernelConfig[] = [
    { kernelName: 'Step', backendName: NATIVE, kernelFunc: stepKernel(stockStep.kernelFunc) },
    { kernelName: BATCH_NORM_TRAINING_KERNEL, backendName: NATIVE, kernelFunc: batchNormTraining },
    { kernelName: BATCH_NORM_TRAINING_GRAD_KERNEL, backendName: NATIVE, kernelFunc: batchNormTrainingGrad },
    { kernelName: RELU_GRAD_KERNEL, backendName: NATIVE, kernelFunc: reluGrad },
  ];
  for (const config of configs) {
    // Replacing needs an unregister first, or tfjs warns about the duplicate.
    if (tf.getKernel(config.kernelName, NATIVE)) tf.unregisterKernel(config.kernelName, NATIVE);
    tf.registerKernel(config);
  }
  installReluGradient();
  installedKernels = configs.map((c) => c.kernelName);
  return installedKernels;
}

/** Whether {@link batchNormInTraining} can run on the active backend. */
export function nativeBatchNormAvailable(): boolean {
  return installedKernels !== null && tf.getBackend() === NATIVE;
}

/**
 * Batch normalisation with batch statistics over every axis but the last (NHWC, per channel),
 * as a tfjs-layers BatchNormalization layer computes it in training mode, but as one native op
 * forward and one backward instead of moments + normalisation + their gradients (~15 full-size
 * passes). Returns the normalised tensor and the batch mean and (biased) variance for the moving
 * averages; only `y` carries gradients (to x, gamma and beta).
 * @throws when the native kernels are not installed (see {@link nativeBatchNormAvailable}).
 */
export function batchNormInTraining(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor } {
  if (!nativeBatchNormAvailable()) throw new Error('batchNormInTraining needs the native kernels on the tensorflow backend');
  let stats: [tf.Tensor, tf.Tensor] | null = null;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xs, scale, offset, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [y, mean, variance, r1, r2, r3] = tf.engine().runKernel(BATCH_NORM_TRAINING_KERNEL, { x: xs, scale, offset }, { epsilon }) as tf.Tensor[] as BatchNormTrainingOutputs;
    save([xs, scale, r1, r2, r3]);
    // The forward runs inside an engine tidy that would dispose the statistics.
    stats = [tf.keep(mean), tf.keep(variance)];
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sScale, s1, s2, s3] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return tf.engine().runKernel(BATCH_NORM_TRAINING_GRAD_KERNEL, { dy, x: sx, scale: sScale, reserve1: s1, reserve2: s2, reserve3: s3 }, { epsilon }) as tf.Tensor[];
      },
    };
  });
  // tf.op names the scope, so profiles show `detlBatchNormTraining__op` rather than `unnamed scope`.
  const y = tf.op({ detlBatchNormTraining: (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => op(a, g, b) })(x, gamma, beta);
  const [mean, variance] = stats as unknown as [tf.Tensor, tf.Tensor];
  return { y, mean, variance };
}
