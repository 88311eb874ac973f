import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { installNativeTrainingKernels } from './native-training-kernels';
import { createOptimizer, prepareBatchNormForTraining, type TrainingStage } from './train';

/** Options of {@link measureThroughput}. */
export interface ThroughputOptions {
  batchSize: number;
  /** Untimed batches first (XNNPACK packs weights and sets up operators on first use). */
  warmup?: number;
  /** Timed batches; the median is reported. */
  iterations?: number;
  optimizer?: TrainingStage['optimizer'];
}

/** Images per second of one model on the active backend. */
export interface ThroughputResult {
  backend: string;
  batchSize: number;
  /** Median img/s of forward + backward + optimizer update (no augmentation). */
  trainImagesPerSecond: number;
  /** Median img/s of inference. */
  inferImagesPerSecond: number;
  /**
   * Median images per CPU-second of this process (all its threads) for training. On one thread it
   * measures the work a step takes and, unlike wall time, barely moves when other processes
   * share the cores; with several threads it is not a speed.
   */
  trainImagesPerCpuSecond: number;
  /** The same for inference. */
  inferImagesPerCpuSecond: number;
  /** Process resident set size after the runs, bytes (the wasm heap never shrinks). */
  rssBytes: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Measures training and inference throughput on random inputs the model's size, with the same
 * step trainModel takes (softmax cross-entropy on one-hot labels, optimizer.minimize).
 */
export function measureThroughput(model: LayersModel, options: ThroughputOptions): ThroughputResult {
  const [, height, width, channels] = model.inputs[0]?.shape ?? [];
  const classes = model.outputs[0]?.shape[1];
  if (typeof height !== 'number' || typeof width !== 'number' || typeof channels !== 'number' || typeof classes !== 'number') {
    throw new Error(`model '${model.name}' has no fixed input/output shape`);
  }
  const { batchSize } = options;
  const warmup = options.warmup ?? 2;
  const iterations = options.iterations ?? 5;
  // The same preparation trainModel does, so the measured step is the one training takes.
  installNativeTrainingKernels();
  prepareBatchNormForTraining(model);
  const optimizer = createOptimizer({ optimizer: options.optimizer ?? 'adam', learningRate: 1e-4, momentum: 0.9 });
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = tf.randomUniform([batchSize, height, width, channels], 0, 1, 'float32', 1);
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: batchSize }, (_, i) => i % classes), 'int32'), classes));
  const train: number[] = [];
  const infer: number[] = [];
  const trainCpu: number[] = [];
  const inferCpu: number[] = [];
  const cpuSecondsSince = (start: NodeJS.CpuUsage): number => {
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1e6;
  };
  try {
    for (let i = 0; i < warmup + iterations; i += 1) {
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      tf.tidy(() => {
        const cost = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor), true, variables);
        cost?.dataSync();
      });
      if (i >= warmup) {
        train.push(batchSize / ((performance.now() - start) / 1000));
        trainCpu.push(batchSize / cpuSecondsSince(cpuStart));
      }
    }
    for (let i = 0; i < warmup + iterations; i += 1) {
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
      if (i >= warmup) {
        infer.push(batchSize / ((performance.now() - start) / 1000));
        inferCpu.push(batchSize / cpuSecondsSince(cpuStart));
      }
    }
  } finally {
    tf.dispose([x, y]);
    optimizer.dispose();
  }
  return {
    backend: tf.getBackend(),
    batchSize,
    trainImagesPerSecond: median(train),
    inferImagesPerSecond: median(infer),
    trainImagesPerCpuSecond: median(trainCpu),
    inferImagesPerCpuSecond: median(inferCpu),
    rssBytes: process.memoryUsage().rss,
  };
}
