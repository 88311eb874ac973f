// Runs a run's fold models in the page with tfjs on its CPU backend (plain JavaScript: no GPU, the
// same float32 kernels on every machine, so the result matches `detl predict` to ~1e-6). This module
// is loaded on demand, so tfjs never weighs on the runs list.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import type { GradCamMethod } from '@detl/config/experiment-config';

/** One fold model, loaded. */
export interface LoadedModel {
  fold: number;
  model: tfl.LayersModel;
}

/** What the ensemble says about one image. */
export interface EnsembleResult {
  /** Mean of the fold models' probabilities, per class (the ensemble `detl predict` uses). */
  probabilities: number[];
  /** Each fold's own probabilities. */
  perFold: { fold: number; probabilities: number[] }[];
  predicted: number;
  /** Grad-CAM (or HiResCAM, Grad-CAM++) of the predicted class: each fold's map averaged and scaled to a peak of 1, size² values. */
  heatmap: Float32Array;
}

let ready: Promise<void> | null = null;

/** Selects the CPU backend once per page. */
export function initTf(): Promise<void> {
  ready ??= tf.setBackend('cpu').then((ok) => {
    if (!ok) throw new Error('tfjs could not start its CPU backend in this browser');
  });
  return ready;
}

/** Loads the fold models from the dashboard (model.json, then the weights it names, same origin). */
export async function loadFoldModels(models: { fold: number; modelUrl: string }[], onProgress: (loaded: number) => void): Promise<LoadedModel[]> {
  await initTf();
  const loaded: LoadedModel[] = [];
  try {
    for (const { fold, modelUrl } of models) {
      loaded.push({ fold, model: await tfl.loadLayersModel(modelUrl) });
      onProgress(loaded.length);
    }
    return loaded;
  } catch (error) {
    for (const { model } of loaded) model.dispose();
    throw error;
  }
}

/** The network input: grey / scale as [1, size, size, channels] (grey repeated for a 3-channel model), as the training code feeds it. */
function inputTensor(pixels: Uint8Array, size: number, channels: number, scale: number): tf.Tensor4D {
  // Tidy, or the raw pixel tensor (and the grey one under a tile) outlives every screening.
  return tf.tidy(() => {
    const grey = tf.div(tf.tensor4d(pixels, [1, size, size, 1], 'float32'), scale) as tf.Tensor4D;
    return channels === 1 ? grey : (tf.tile(grey, [1, 1, 1, channels]) as tf.Tensor4D);
  });
}

type Layer = tfl.LayersModel['layers'][number];

/**
 * Grad-CAM's layer and head for a model: A is the output of the last layer, from the last Conv2D on,
 * that keeps the conv's spatial size and that every later layer's input descends from (so the head
 * can be re-run from A alone); the head is the layers after it, ending in the class logits (a softmax
 * output Dense is evaluated without its softmax, as Grad-CAM differentiates pre-softmax scores).
 */
function gradCamPlan(model: tfl.LayersModel): { target: Layer; head: Layer[]; softmaxDense: Layer | null } {
  const layers = model.layers;
  const convIndex = layers.map((layer) => layer.getClassName()).lastIndexOf('Conv2D');
  if (convIndex < 0) throw new Error(`model ${model.name} has no Conv2D layer to explain`);
  const spatial = (layer: Layer) => JSON.stringify((layer.outputShape as number[]).slice(1, 3));
  const convShape = spatial(layers[convIndex] as Layer);
  const output = layers[layers.length - 1] as Layer;
  const activation = (output.getConfig() as { activation?: string }).activation;
  const softmaxDense = output.getClassName() === 'Dense' && activation === 'softmax' ? output : null;
  for (let t = layers.length - 2; t >= convIndex; t -= 1) {
    const target = layers[t] as Layer;
    if ((target.outputShape as number[]).length !== 4 || spatial(target) !== convShape) continue;
    const head = layers.slice(t + 1);
    // A cut: every head layer takes its inputs from the target or from head layers before it.
    const known = new Set<Layer>([target]);
    const cut = head.every((layer) => {
      const inbound = layer.inboundNodes[0]?.inboundLayers ?? [];
      const ok = inbound.length > 0 && inbound.every((source) => known.has(source));
      known.add(layer);
      return ok;
    });
    if (cut) return { target, head, softmaxDense };
  }
  throw new Error(`no layer of ${model.name} after its last Conv2D separates the image from the output`);
}

/** One network's Grad-CAM layer and head ({@link gradCamPlan}). */
type GradCamPlan = ReturnType<typeof gradCamPlan>;

/** Re-runs the head layers eagerly on feature maps A and returns the class logits. */
function headLogits(plan: GradCamPlan, features: tf.Tensor): tf.Tensor2D {
  const values = new Map<Layer, tf.Tensor>([[plan.target, features]]);
  let last = features;
  for (const layer of plan.head) {
    const inbound = (layer.inboundNodes[0]?.inboundLayers ?? []).map((source) => values.get(source) as tf.Tensor);
    if (layer === plan.softmaxDense) {
      const [kernel, bias] = layer.getWeights();
      const product = tf.matMul(inbound[0] as tf.Tensor2D, kernel as tf.Tensor2D);
      last = bias === undefined ? product : tf.add(product, bias);
    } else {
      last = layer.apply(inbound.length === 1 ? (inbound[0] as tf.Tensor) : inbound, { training: false }) as tf.Tensor;
    }
    values.set(layer, last);
  }
  return last as tf.Tensor2D;
}

/** The weights on the feature maps: libs/ml's `camWeights`, copied (the page may not import libs/ml). */
function camWeights(method: GradCamMethod, features: tf.Tensor4D, gradients: tf.Tensor4D): tf.Tensor {
  if (method === 'hires-cam') return gradients;
  if (method === 'grad-cam') return tf.mean(gradients, [0, 1, 2]);
  const g2 = tf.square(gradients);
  const denominator = tf.add(tf.mul(g2, 2), tf.mul(tf.sum(features, [0, 1, 2]), tf.mul(g2, gradients)));
  const counted = tf.logicalAnd(tf.greater(gradients, 0), tf.notEqual(denominator, 0));
  const terms = tf.where(counted, tf.mul(tf.div(g2, denominator), gradients), tf.zerosLike(gradients));
  return tf.sum(terms, [0, 1, 2]);
}

/**
 * The name of the layer that averages an ensemble model's members' logits into its output: libs/ml's
 * `ENSEMBLE_OUTPUT_LAYER`, copied (the page may not import libs/ml).
 */
const ENSEMBLE_OUTPUT_LAYER = 'ensemble_logits';

/**
 * Grad-CAM's plan for every member network of a model, in member order: one plan of the whole model,
 * or, for an ensemble (`model.members` > 1, its output the {@link ENSEMBLE_OUTPUT_LAYER} mean of the
 * members' logits), one per member, each planned within the member's own network — its paths never
 * cross the others', so no single layer of the ensemble separates the image from the output.
 */
function gradCamPlans(model: tfl.LayersModel): GradCamPlan[] {
  const output = model.outputs[0];
  if (model.outputs.length !== 1 || output?.sourceLayer.name !== ENSEMBLE_OUTPUT_LAYER) return [gradCamPlan(model)];
  const node = output.sourceLayer.inboundNodes[output.nodeIndex];
  if (node === undefined) throw new Error(`'${ENSEMBLE_OUTPUT_LAYER}' of model ${model.name} has no inputs`);
  // Wraps the model's own graph nodes (no layers, no weights of its own), so it is never disposed:
  // LayersModel.dispose would release the shared layers' weights.
  return node.inputTensors.map((logits, m) => gradCamPlan(tfl.model({ inputs: model.inputs, outputs: logits, name: `${model.name}_member${m + 1}` })));
}

/**
 * The class logits from feature maps A of every plan of {@link gradCamPlans}: a single plan's head as
 * it is; an ensemble's A holds its members' maps side by side (channels concatenated, in member
 * order), each member's head runs on its own channels and the logits are their mean, as the
 * ensemble's output (libs/ml's Grad-CAM of an ensemble).
 */
function plansLogits(plans: GradCamPlan[], features: tf.Tensor): tf.Tensor2D {
  const [only] = plans;
  if (plans.length === 1 && only !== undefined) return headLogits(only, features);
  const parts = tf.split(features, plans.map(channelsOf), 3);
  return tf.div(tf.addN(plans.map((plan, m) => headLogits(plan, parts[m] as tf.Tensor))), plans.length) as tf.Tensor2D;
}

/** Feature maps in a plan's A (the last axis of its target's output). */
function channelsOf(plan: GradCamPlan): number {
  return (plan.target.outputShape as number[])[3] as number;
}

/**
 * One model's probabilities and class-activation map (size², in [0, 1]) for class `classIndex`, or its
 * own prediction: libs/ml's `createGradCamExplainer` in small. `grad-cam` weights each feature map by
 * its gradient's spatial mean, `hires-cam` by the gradient itself, element-wise, `grad-cam++` by
 * its positive gradients weighted by α = g² / (2g² + Σ A · g³) (libs/ml's `camWeights`). An ensemble
 * model is explained as one network whose A is every member's A and whose score is the members' mean
 * logit ({@link plansLogits}), so the map weighs every member's evidence for the ensemble's class.
 */
function explain(model: tfl.LayersModel, input: tf.Tensor4D, size: number, classIndex: number | null, method: GradCamMethod): { probabilities: number[]; heatmap: Float32Array } {
  const plans = gradCamPlans(model);
  return tf.tidy(() => {
    const targets = plans.map((plan) => plan.target.output as tfl.SymbolicTensor);
    const featureModel = tfl.model({ inputs: model.inputs, outputs: targets.length === 1 ? (targets[0] as tfl.SymbolicTensor) : targets });
    const predicted = featureModel.predict(input);
    const features = (Array.isArray(predicted) ? tf.concat(predicted, 3) : predicted) as tf.Tensor4D;
    const logits = plansLogits(plans, features);
    const probabilities = Array.from(tf.softmax(logits).dataSync());
    const explained = classIndex ?? probabilities.indexOf(Math.max(...probabilities));
    const oneHot = tf.cast(tf.oneHot(tf.tensor1d([explained], 'int32'), probabilities.length), 'float32');
    const gradients = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(plansLogits(plans, a), oneHot)))(features);
    const weights = camWeights(method, features, gradients as tf.Tensor4D);
    const cam = tf.relu(tf.sum(tf.mul(features, weights), -1, true)) as tf.Tensor4D;
    const upsampled = tf.image.resizeBilinear(cam, [size, size], false, true);
    const max = tf.max(upsampled);
    const normalised = tf.where(tf.greater(max, 0), tf.div(upsampled, tf.maximum(max, 1e-30)), tf.zerosLike(upsampled));
    return { probabilities, heatmap: Float32Array.from(normalised.dataSync()) };
  });
}

/**
 * One fold's probabilities: the softmax of its output or, with test-time flip, the mean of the
 * softmax of the image and of its left-right mirror (`tf.reverse` on the width axis) — what
 * libs/ml's `classProbabilities` computes for `detl predict`, which this page may not import.
 */
function foldProbabilities(model: tfl.LayersModel, input: tf.Tensor4D, testTimeFlip: boolean): number[] {
  return tf.tidy(() => {
    const plain = tf.softmax(model.predict(input) as tf.Tensor2D);
    const probabilities = testTimeFlip ? tf.div(tf.add(plain, tf.softmax(model.predict(tf.reverse(input, 2)) as tf.Tensor2D)), 2) : plain;
    return Array.from(probabilities.dataSync());
  });
}

/**
 * Screens one preprocessed image with every fold model: probabilities averaged over folds (the
 * ensemble of `detl predict`; each fold's flip-averaged when the run scores with `testTimeFlip`),
 * then each fold's map (the run's `gradCam.method`, default Grad-CAM) of the ensemble's class on the
 * image as it is, averaged and scaled back to a peak of 1 — the map `detl predict` draws.
 */
export async function screenImage(
  models: LoadedModel[],
  pixels: Uint8Array,
  size: number,
  scale: number,
  options: { testTimeFlip: boolean; gradCamMethod?: GradCamMethod },
): Promise<EnsembleResult> {
  await initTf();
  const perFold = models.map(({ fold, model }) => {
    const channels = (model.inputs[0]?.shape[3] as number | undefined) ?? 1;
    const input = inputTensor(pixels, size, channels, scale);
    try {
      const probabilities = foldProbabilities(model, input, options.testTimeFlip);
      return { fold, probabilities };
    } finally {
      input.dispose();
    }
  });
  const classes = perFold[0]?.probabilities.length ?? 0;
  const probabilities = Array.from({ length: classes }, (_, c) => perFold.reduce((sum, entry) => sum + (entry.probabilities[c] ?? 0), 0) / perFold.length);
  const predicted = probabilities.indexOf(Math.max(...probabilities));
  const heatmap = new Float32Array(size * size);
  for (const { model } of models) {
    const channels = (model.inputs[0]?.shape[3] as number | undefined) ?? 1;
    const input = inputTensor(pixels, size, channels, scale);
    try {
      const map = explain(model, input, size, predicted, options.gradCamMethod ?? 'grad-cam').heatmap;
      for (let p = 0; p < heatmap.length; p += 1) heatmap[p] = (heatmap[p] as number) + (map[p] as number) / models.length;
    } finally {
      input.dispose();
    }
  }
  const peak = heatmap.reduce((max, value) => Math.max(max, value), 0);
  if (peak > 0) for (let p = 0; p < heatmap.length; p += 1) heatmap[p] = (heatmap[p] as number) / peak;
  return { probabilities, perFold, predicted, heatmap };
}
