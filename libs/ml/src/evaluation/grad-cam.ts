/**
 * Grad-CAM (Selvaraju et al. 2017) as the paper states it: for class c and the K feature maps A^k of
 * the last convolutional layer, w_k^c = mean over (h, w) of ∂y^c/∂A^k_{h,w}, and the map is
 * ReLU(Σ_k w_k^c A^k), upsampled bilinearly to the input size and normalised to [0, 1].
 *
 * HiResCAM (Draelos & Carin 2020), the other `gradCam.method`, keeps the gradient's positions:
 * ReLU(Σ_k ∂y^c/∂A^k ⊙ A^k), upsampled and normalised the same way. When A reaches the logits through
 * a Flatten and a Dense, y^c = Σ_{h,w,k} W^c_{h,w,k} A^k_{h,w} + b^c, so the map is each position's
 * exact share of the score, while Grad-CAM's one weight per channel can cancel it out; with ReLU
 * layers between (small-vgg: Flatten → Dense 128 → Dense) it is that share for the head's linear
 * piece at this image.
 *
 * Grad-CAM++ (Chattopadhyay et al. 2018), the third, keeps one weight per channel but builds it from
 * the positive gradients only, each weighted by α_ij = g_ij² / (2 g_ij² + Σ_ab A^k_ab g_ij³)
 * (g = ∂y^c/∂A^k; their Eq. 19, the exponential's higher derivatives written through the first):
 * w_k = Σ_ij α_ij ReLU(g_ij), map ReLU(Σ_k w_k A^k), upsampled and normalised the same way. Where
 * Grad-CAM's mean lets a channel's negative gradients elsewhere cancel its positive ones at the
 * lesion, Grad-CAM++ does not.
 */
import { GRAD_CAM_METHODS, type GradCamMethod } from '@detl/config/experiment-config';
import * as tf from '@tensorflow/tfjs-core';
// The layers bundle also registers every op's gradient, which tfjs-core's node bundle does not.
import * as tfl from '@tensorflow/tfjs-layers';
import { memberLogits } from '../core/models';
import { heatmapPeak } from './localization';

type Layer = tfl.LayersModel['layers'][number];
type LayerNode = Layer['inboundNodes'][number];
type SymbolicTensor = tfl.SymbolicTensor;

/** Options of {@link createGradCamExplainer}. */
export interface GradCamOptions {
  /**
   * Layer whose output is A. Default: the last Conv2D (or depthwise / separable conv) of the model,
   * moved forward to the last later layer that keeps its spatial size and through which every path
   * to the output passes — so `conv → BatchNorm → ReLU` explains the rectified maps, and a residual
   * block explains the block output after its `Add`/ReLU, as Keras Grad-CAM examples do. A named
   * layer is used as is and must be such a cut of the graph. For an ensemble model (`members` > 1)
   * the name is a member's layer without its `member<m>_` prefix, used in every member.
   */
  lastConvLayerName?: string;
  /**
   * How the map is made from A and ∂y^c/∂A (`gradCam.method` of the experiment config):
   * `grad-cam` (default) weights each channel by its gradient's spatial mean, `hires-cam` multiplies
   * them element-wise, `grad-cam++` weights each channel by its α-weighted positive gradients
   * ({@link camWeights}); all then sum over channels, ReLU, upsample and normalise alike.
   */
  method?: GradCamMethod;
}

/** One Grad-CAM explanation. */
export interface GradCamResult {
  /** size × size, row-major, in [0, 1]; all zeros when no feature map speaks for the class. */
  heatmap: Float32Array;
  /** The explained class: the one asked for, else the most probable. */
  classIndex: number;
  /** The model's class probabilities for the image. */
  probabilities: number[];
  /**
   * Pixel of the heatmap maximum ({@link heatmapPeak}: a tie goes to the pixel farthest from the border; (0, 0) for an
   * all-zero map, which {@link pointingGame} treats as pointing nowhere); x = column, y = row.
   */
  peak: { x: number; y: number };
}

/** Raw ingredients of a Grad-CAM map, for checking and debugging. */
export interface GradCamGradients {
  /** A, shape [H, W, K] row-major (channels last). */
  features: Float32Array;
  /** ∂y^c/∂A, same layout as `features`. */
  gradients: Float32Array;
  shape: [number, number, number];
  /** y^c, the pre-softmax class score that was differentiated. */
  score: number;
  classIndex: number;
}

/** What {@link createGradCamExplainer} returns. */
export interface GradCamExplainer {
  /** Name of the layer whose feature maps are explained (an ensemble's members' layers, joined by '+'). */
  readonly layerName: string;
  readonly numClasses: number;
  /** How its maps are made ({@link GradCamOptions.method}). */
  readonly method: GradCamMethod;
  /**
   * Explains one greyscale image.
   *
   * @param pixels - size × size grey values 0–255, row-major; fed to the model as pixels / 255 in
   *   shape [1, size, size, 1] (grey repeated into 3 channels for a 3-channel model), the
   *   normalisation the training code uses
   * @param classIndex - class to explain; default the predicted class
   */
  explain(pixels: Uint8Array, size: number, classIndex?: number): GradCamResult;
  /** A and ∂y^c/∂A for one image (same input convention as `explain`). */
  gradients(pixels: Uint8Array, size: number, classIndex?: number): GradCamGradients;
  /** Releases what the explainer allocated; the model itself stays usable and is not disposed. */
  dispose(): void;
}

const CONV_CLASSES = new Set(['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D']);

/** How the model's output relates to the class score y^c that Grad-CAM differentiates. */
type ScoreHead =
  /** The head's last tensor already is y (linear output); probabilities = softmax(y). */
  | { kind: 'logits' }
  /** The head's last tensor is y and an `Activation` layer turned it into the output. */
  | { kind: 'activation'; activation: 'softmax' | 'sigmoid' }
  /** The head's last tensor is the input of a Dense layer whose activation we leave out. */
  | { kind: 'dense'; activation: 'softmax' | 'sigmoid'; layer: Layer };

/** One layer call of the head, in execution order. */
interface Step {
  layer: Layer;
  inputs: SymbolicTensor[];
  outputs: SymbolicTensor[];
  callArgs: Record<string, unknown>;
}

/** Thrown while planning when a path to the output bypasses the chosen layer. */
class NotACutError extends Error {}

function activationName(layer: Layer): string | undefined {
  const value = (layer.getConfig() as { activation?: unknown }).activation;
  return typeof value === 'string' ? value : undefined;
}

function nodeOf(tensor: SymbolicTensor): LayerNode {
  const node = tensor.sourceLayer.inboundNodes[tensor.nodeIndex];
  if (node === undefined) throw new Error(`tensor ${tensor.name} has no producing node`);
  return node;
}

/**
 * Every symbolic tensor of the model's own graph, by producing layer. Walking back from the model's
 * outputs (rather than reading `layer.output`) picks the nodes of this model even when a layer is
 * shared with another model.
 */
function tensorsByLayer(model: tfl.LayersModel): Map<Layer, SymbolicTensor> {
  const result = new Map<Layer, SymbolicTensor>();
  const seen = new Set<SymbolicTensor>();
  const stack = [...model.outputs];
  while (stack.length > 0) {
    const tensor = stack.pop() as SymbolicTensor;
    if (seen.has(tensor)) continue;
    seen.add(tensor);
    if (!result.has(tensor.sourceLayer)) result.set(tensor.sourceLayer, tensor);
    stack.push(...nodeOf(tensor).inputTensors);
  }
  return result;
}

/**
 * The layer calls that turn `from` into `to`, in topological order.
 *
 * @throws NotACutError when `to` depends on the model input through a path that avoids `from`
 */
function planHead(from: SymbolicTensor, to: SymbolicTensor): Step[] {
  const steps: Step[] = [];
  const planned = new Set<LayerNode>();
  const visit = (tensor: SymbolicTensor): void => {
    if (tensor === from) return;
    const node = nodeOf(tensor);
    if (planned.has(node)) return;
    // An InputLayer's node lists its own output as input: the walk has escaped past `from`.
    if (node.inboundLayers.length === 0) {
      throw new NotACutError(`'${tensor.sourceLayer.name}' reaches the output without passing '${from.sourceLayer.name}'`);
    }
    node.inputTensors.forEach(visit);
    planned.add(node);
    steps.push({
      layer: node.outboundLayer,
      inputs: node.inputTensors,
      outputs: node.outputTensors,
      callArgs: { ...(node.callArgs ?? {}) },
    });
  };
  visit(to);
  return steps;
}

function describeScoreHead(model: tfl.LayersModel): { scoreTensor: SymbolicTensor; head: ScoreHead } {
  const output = model.outputs[0] as SymbolicTensor;
  const last = output.sourceLayer;
  const activation = activationName(last);
  if (activation === undefined || activation === 'linear') return { scoreTensor: output, head: { kind: 'logits' } };
  if (activation !== 'softmax' && activation !== 'sigmoid') {
    throw new Error(`cannot recover class scores from output activation '${activation}' of layer '${last.name}'`);
  }
  const inputs = nodeOf(output).inputTensors;
  const input = inputs[0];
  if (inputs.length !== 1 || input === undefined) throw new Error(`output layer '${last.name}' must have one input`);
  if (last.getClassName() === 'Activation') return { scoreTensor: input, head: { kind: 'activation', activation } };
  if (last.getClassName() === 'Dense') return { scoreTensor: input, head: { kind: 'dense', activation, layer: last } };
  throw new Error(`cannot strip the ${activation} of output layer '${last.name}' (${last.getClassName()})`);
}

function spatialShape(tensor: SymbolicTensor): [number | null, number | null] | null {
  return tensor.shape.length === 4 ? [tensor.shape[1] ?? null, tensor.shape[2] ?? null] : null;
}

function chooseTarget(
  model: tfl.LayersModel,
  scoreTensor: SymbolicTensor,
  name: string | undefined,
): { tensor: SymbolicTensor; steps: Step[] } {
  const tensors = tensorsByLayer(model);
  if (name !== undefined) {
    const layer = model.getLayer(name);
    const tensor = tensors.get(layer);
    if (tensor === undefined) throw new Error(`layer '${name}' does not lead to the model output`);
    if (tensor.shape.length !== 4) throw new Error(`layer '${name}' outputs rank ${tensor.shape.length}, Grad-CAM needs [batch, H, W, K]`);
    try {
      return { tensor, steps: planHead(tensor, scoreTensor) };
    } catch (error) {
      if (error instanceof NotACutError) throw new Error(`Grad-CAM on layer '${name}' is not possible: ${error.message}`);
      throw error;
    }
  }
  const layers = model.layers;
  let convIndex = -1;
  layers.forEach((layer, i) => {
    if (CONV_CLASSES.has(layer.getClassName()) && tensors.has(layer)) convIndex = i;
  });
  const conv = layers[convIndex];
  if (conv === undefined) {
    const nested = layers.find((layer) => layer instanceof tfl.LayersModel);
    throw new Error(
      nested
        ? `no Conv2D layer at the top level of the model (nested model '${nested.name}'); pass lastConvLayerName of a top-level layer`
        : 'the model has no Conv2D layer',
    );
  }
  const convShape = JSON.stringify(spatialShape(tensors.get(conv) as SymbolicTensor));
  // Later layers first: the furthest same-resolution cut explains the most processed maps.
  for (let i = layers.length - 1; i >= convIndex; i--) {
    const tensor = tensors.get(layers[i] as Layer);
    if (tensor === undefined || JSON.stringify(spatialShape(tensor)) !== convShape) continue;
    try {
      return { tensor, steps: planHead(tensor, scoreTensor) };
    } catch (error) {
      if (!(error instanceof NotACutError)) throw error;
    }
  }
  throw new Error(`no layer from '${conv.name}' on is a cut of the graph; pass lastConvLayerName`);
}

/** Runs the planned head on concrete features. Eager calls add no nodes to the model's graph. */
function runHead(steps: readonly Step[], from: SymbolicTensor, to: SymbolicTensor, features: tf.Tensor): tf.Tensor {
  const values = new Map<SymbolicTensor, tf.Tensor>([[from, features]]);
  for (const step of steps) {
    const inputs = step.inputs.map((t) => {
      const value = values.get(t);
      if (value === undefined) throw new Error(`head input ${t.name} was not computed`);
      return value;
    });
    // training: false keeps Dropout as identity and BatchNorm on its moving statistics.
    const result = step.layer.apply(inputs.length === 1 ? (inputs[0] as tf.Tensor) : inputs, {
      ...step.callArgs,
      training: false,
    });
    const outputs = Array.isArray(result) ? result : [result];
    step.outputs.forEach((t, i) => {
      const value = outputs[i];
      if (!(value instanceof tf.Tensor)) throw new Error(`layer '${step.layer.name}' returned no tensor ${i}`);
      values.set(t, value);
    });
  }
  const out = values.get(to);
  if (out === undefined) throw new Error('head did not produce the score tensor');
  return out;
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

/**
 * The weights by which `method` multiplies the feature maps A (shape [1, H, W, K]) before summing
 * over channels, from the class score's gradient ∂y^c/∂A (same shape):
 * - `grad-cam`: w_k = mean_ij ∂y^c/∂A^k_ij, shape [K];
 * - `hires-cam`: the gradient itself, shape [1, H, W, K];
 * - `grad-cam++`: w_k = Σ_ij α_ij ReLU(g_ij), α_ij = g_ij² / (2 g_ij² + Σ_ab A^k_ab · g_ij³),
 *   g = ∂y^c/∂A^k, shape [K]. Only positive gradients count, and α is taken as 0 where its
 *   denominator is 0 (a zero gradient), so the weights stay finite for any A.
 * Call inside a `tf.tidy`. Uses only kernels the wasm backend has.
 */
export function camWeights(method: GradCamMethod, features: tf.Tensor4D, gradients: tf.Tensor4D): tf.Tensor {
  if (method === 'hires-cam') return gradients;
  if (method === 'grad-cam') return tf.mean(gradients, [0, 1, 2]);
  const g2 = tf.square(gradients);
  const denominator = tf.add(tf.mul(g2, 2), tf.mul(tf.sum(features, [0, 1, 2]), tf.mul(g2, gradients)));
  const counted = tf.logicalAnd(tf.greater(gradients, 0), tf.notEqual(denominator, 0));
  // The unselected quotients (0 / 0, or any x / 0) never reach the sum: `where` picks per element.
  const terms = tf.where(counted, tf.mul(tf.div(g2, denominator), gradients), tf.zerosLike(gradients));
  return tf.sum(terms, [0, 1, 2]);
}

/**
 * Builds a Grad-CAM explainer for a trained single-input, single-output classifier taking
 * [batch, H, W, 1] (or grey-replicated [batch, H, W, 3]) images and giving [batch, classes].
 *
 * The class score y^c is the **pre-softmax** logit, as in the paper's and Selvaraju et al.'s
 * definition: differentiating the softmax output would mix in every other class's score and
 * saturate for confident predictions. When the output layer is a Dense (or Activation) with a softmax
 * or sigmoid, the explainer evaluates that Dense without its activation, reading the model's own
 * kernel and bias at each call (no copies, so it follows later weight updates). A linear output is
 * taken as the logits.
 *
 * An ensemble model (`members` > 1, its output the mean of the members' logits) is explained as one
 * network whose A is the channel-wise concatenation of every member's A (each chosen as above within
 * its member): the map weighs every member's evidence for the ensemble's score.
 *
 * Implementation: one functional model maps the image to A (sharing the model's layers and weights),
 * and the layers after A are re-run eagerly on A inside `tf.valueAndGrad`, which gives ∂y^c/∂A
 * directly. Only ops with gradients on the wasm backend are used (no `gather`: the class score is
 * picked by a one-hot product), so Grad-CAM runs on wasm, cpu and tensorflow alike.
 */
export function createGradCamExplainer(model: tfl.LayersModel, options: GradCamOptions = {}): GradCamExplainer {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new Error(`Grad-CAM needs one input and one output; the model has ${model.inputs.length} and ${model.outputs.length}`);
  }
  const inputShape = (model.inputs[0] as SymbolicTensor).shape;
  const channels = inputShape[3];
  if (inputShape.length !== 4 || (channels !== 1 && channels !== 3)) {
    throw new Error(`Grad-CAM expects [batch, H, W, 1 or 3] input, the model takes [${inputShape.join(', ')}]`);
  }
  const outputShape = (model.outputs[0] as SymbolicTensor).shape;
  const numClasses = outputShape[1];
  if (outputShape.length !== 2 || typeof numClasses !== 'number') {
    throw new Error(`Grad-CAM needs [batch, classes] output, the model gives [${outputShape.join(', ')}]`);
  }
  const method = options.method ?? 'grad-cam';
  if (!GRAD_CAM_METHODS.includes(method)) throw new Error(`unknown Grad-CAM method '${String(method)}'`);
  const { scoreTensor, head } = describeScoreHead(model);
  const members = memberLogits(model);
  // An ensemble's A is its members' feature maps side by side (channels concatenated), each member's
  // chosen as for a model of its own; the score is the mean of the members' logits, as the output.
  const targets =
    members.length === 1
      ? [{ ...chooseTarget(model, scoreTensor, options.lastConvLayerName), scoreTensor }]
      : members.map((logits, m) => ({
          ...chooseTarget(tfl.model({ inputs: model.inputs, outputs: logits }), logits, options.lastConvLayerName && `member${m + 1}_${options.lastConvLayerName}`),
          scoreTensor: logits,
        }));
  // Wraps existing graph nodes: builds no layers and owns no weights, so it is never disposed
  // (LayersModel.dispose would release the shared layers' weights).
  const featureModel = tfl.model({ inputs: model.inputs, outputs: targets.map((target) => target.tensor) });
  const channelsPerTarget = targets.map((target) => target.tensor.shape[3] as number);
  let disposed = false;

  const featuresOf = (image: tf.Tensor): tf.Tensor4D => {
    const out = featureModel.predict(image);
    return (Array.isArray(out) ? tf.concat(out, 3) : out) as tf.Tensor4D;
  };
  const scoreInputOf = (features: tf.Tensor): tf.Tensor => {
    if (targets.length === 1) {
      const [target] = targets as [(typeof targets)[number]];
      return runHead(target.steps, target.tensor, target.scoreTensor, features);
    }
    const parts = tf.split(features, channelsPerTarget, 3);
    return tf.div(tf.addN(targets.map((target, m) => runHead(target.steps, target.tensor, target.scoreTensor, parts[m] as tf.Tensor))), targets.length);
  };

  const logitsOf = (features: tf.Tensor): tf.Tensor2D => {
    const scoreInput = scoreInputOf(features);
    if (head.kind !== 'dense') return scoreInput as tf.Tensor2D;
    const [kernel, bias] = head.layer.getWeights();
    if (kernel === undefined) throw new Error(`dense layer '${head.layer.name}' has no kernel`);
    const product: tf.Tensor2D = tf.matMul(scoreInput as tf.Tensor2D, kernel as tf.Tensor2D);
    return bias === undefined ? product : (tf.add(product, bias) as tf.Tensor2D);
  };
  const probabilitiesOf = (logits: tf.Tensor2D): tf.Tensor2D =>
    head.kind !== 'logits' && head.activation === 'sigmoid' ? tf.sigmoid(logits) : tf.softmax(logits);

  const checkInput = (pixels: Uint8Array, size: number, classIndex: number | undefined): void => {
    if (disposed) throw new Error('Grad-CAM explainer is disposed');
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
    if (pixels.length !== size * size) throw new RangeError(`expected ${size}x${size} = ${size * size} pixels, got ${pixels.length}`);
    for (const [axis, dim] of [[1, inputShape[1]], [2, inputShape[2]]] as const) {
      if (dim !== null && dim !== undefined && dim !== size) {
        throw new RangeError(`the model takes ${dim} px along axis ${axis}, the image is ${size} px`);
      }
    }
    if (classIndex !== undefined && (!Number.isInteger(classIndex) || classIndex < 0 || classIndex >= numClasses)) {
      throw new RangeError(`classIndex ${classIndex} is not in [0, ${numClasses})`);
    }
  };

  /** Everything inside runs in the caller's tf.tidy. */
  const compute = (pixels: Uint8Array, size: number, requested: number | undefined) => {
    // pixels / 255 in [1, size, size, 1], the grey repeated into every channel of a 3-channel
    // model: exactly what the training code feeds.
    const grey = tf.div(tf.tensor4d(pixels, [1, size, size, 1], 'float32'), 255);
    const image = channels === 1 ? grey : tf.tile(grey, [1, 1, 1, channels]);
    const features = featuresOf(image);
    // A separate forward pass: tensors made inside valueAndGrad's function are disposed with it.
    const probabilities = probabilitiesOf(logitsOf(features));
    const classIndex = requested ?? argmax(probabilities.dataSync());
    const oneHot = tf.cast(tf.oneHot(tf.tensor1d([classIndex], 'int32'), numClasses), 'float32');
    const scoreOf = (a: tf.Tensor): tf.Scalar => tf.sum(tf.mul(logitsOf(a), oneHot));
    const { value, grad } = tf.valueAndGrad(scoreOf)(features);
    return { features, gradients: grad as tf.Tensor4D, score: value, probabilities, classIndex };
  };

  return {
    layerName: targets.map((target) => target.tensor.sourceLayer.name).join('+'),
    numClasses,
    method,

    explain(pixels, size, requested) {
      checkInput(pixels, size, requested);
      return tf.tidy(() => {
        const { features, gradients, probabilities, classIndex } = compute(pixels, size, requested);
        // grad-cam: w_k^c, the spatial mean of the gradient, one weight per feature map;
        // hires-cam: the gradient itself, one weight per position and feature map;
        // grad-cam++: the α-weighted sum of the positive gradients, one weight per feature map.
        const weights = camWeights(method, features, gradients);
        // ReLU(Σ_k w^c_k ⊙ A^k): keep only evidence for the class.
        const cam = tf.relu(tf.sum(tf.mul(features, weights), -1, true)) as tf.Tensor4D;
        // Half-pixel centres map each feature cell onto the middle of the input patch it covers.
        const upsampled = tf.image.resizeBilinear(cam, [size, size], false, true);
        const max = tf.max(upsampled);
        // Divide by the maximum rather than min-max stretch: zero keeps meaning "no evidence" and
        // a map with no positive evidence stays all zero instead of being stretched from noise.
        const normalised = tf.where(tf.greater(max, 0), tf.div(upsampled, tf.maximum(max, 1e-30)), tf.zerosLike(upsampled));
        const heatmap = normalised.dataSync() as Float32Array;
        return {
          heatmap: Float32Array.from(heatmap),
          classIndex,
          probabilities: Array.from(probabilities.dataSync()),
          peak: heatmapPeak(heatmap, size) ?? { x: 0, y: 0 },
        };
      });
    },

    gradients(pixels, size, requested) {
      checkInput(pixels, size, requested);
      return tf.tidy(() => {
        const { features, gradients, score, classIndex } = compute(pixels, size, requested);
        const [, h, w, k] = features.shape;
        return {
          features: Float32Array.from(features.dataSync()),
          gradients: Float32Array.from(gradients.dataSync()),
          shape: [h, w, k],
          score: score.dataSync()[0] as number,
          classIndex,
        };
      });
    },

    dispose() {
      disposed = true;
    },
  };
}
