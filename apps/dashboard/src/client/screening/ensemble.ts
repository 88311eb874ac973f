// Runs a run's fold models in the page with tfjs on its CPU backend (plain JavaScript: no GPU, the
// same float32 kernels on every machine, so the result matches `detl predict` to ~1e-6). This module
// is loaded on demand, so tfjs never weighs on the runs list.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import type { GradCamMethod } from '@detl/config/experiment-config';
// Scoring (classProbabilities) and Grad-CAM (every method, ensemble fold models) are libs/ml's own code, not a copy: its Node-free
// entry reaches tfjs and @detl/config/experiment-config only (tools/module-boundaries.test.ts walks
// this client's imports and fails on any Node built-in); eslint.config.mjs allows the client this
// one subpath of ml.
import { classProbabilities, createGradCamExplainer, type GradCamExplainer } from '@detl/ml/browser';

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

/**
 * libs/ml's Grad-CAM explainer for a model and method, made once per loaded model (it wraps the
 * model's own graph and owns no weights, so it goes when the model does).
 */
const explainers = new WeakMap<tfl.LayersModel, Map<GradCamMethod, GradCamExplainer>>();

function explainerOf(model: tfl.LayersModel, method: GradCamMethod): GradCamExplainer {
  let byMethod = explainers.get(model);
  if (byMethod === undefined) explainers.set(model, (byMethod = new Map()));
  let explainer = byMethod.get(method);
  if (explainer === undefined) byMethod.set(method, (explainer = createGradCamExplainer(model, { method })));
  return explainer;
}

/** What libs/ml's explainer divides the grey values by before feeding them (its `explain` takes 0–255 pixels). */
const EXPLAINER_PIXEL_SCALE = 255;

/** One fold's probabilities for one image: libs/ml's `classProbabilities`, as `detl predict` scores. */
function foldProbabilities(model: tfl.LayersModel, input: tf.Tensor4D, testTimeFlip: boolean): number[] {
  return tf.tidy(() => Array.from(classProbabilities(model, input, { testTimeFlip }).dataSync()));
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
  if (scale !== EXPLAINER_PIXEL_SCALE) {
    throw new RangeError(`this run feeds pixels ÷ ${scale}; the page's Grad-CAM (libs/ml's explainer) feeds pixels ÷ ${EXPLAINER_PIXEL_SCALE} only`);
  }
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
    const map = explainerOf(model, options.gradCamMethod ?? 'grad-cam').explain(pixels, size, predicted).heatmap;
    for (let p = 0; p < heatmap.length; p += 1) heatmap[p] = (heatmap[p] as number) + (map[p] as number) / models.length;
  }
  const peak = heatmap.reduce((max, value) => Math.max(max, value), 0);
  if (peak > 0) for (let p = 0; p < heatmap.length; p += 1) heatmap[p] = (heatmap[p] as number) / peak;
  return { probabilities, perFold, predicted, heatmap };
}
