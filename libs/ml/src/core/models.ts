import * as tf from '@tensorflow/tfjs-layers';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import { initializers } from '@tensorflow/tfjs-layers';
import { MAX_MODEL_MEMBERS } from '@detl/config/experiment-config';

/** The network families of the paper plus the small CPU default. */
export const ARCHITECTURES = ['small-vgg', 'alexnet', 'vgg16', 'resnet50'] as const;
/** A network family name. */
export type Architecture = (typeof ARCHITECTURES)[number];

/** Everything that determines a network's shape (not its weights). */
export interface ModelSpec {
  architecture: Architecture;
  /** Multiplies every conv filter count and hidden dense width; 1 is the standard network. */
  widthMultiplier: number;
  /** Side of the square input, in pixels. */
  imageSize: number;
  /** 1 for greyscale X-rays, 3 for ImageNet-style inputs. */
  channels: 1 | 3;
  /** Outputs of the last dense layer (≥ 2). */
  numClasses: number;
  /**
   * Independently initialised copies of the network side by side (default 1): an ensemble inside
   * one model, whose output is the mean of the members' logits ({@link ENSEMBLE_OUTPUT_LAYER}).
   * Member m's layers are named `member<m>_<layer>`; member 1 starts from the weights of a
   * single network of the same spec and seed, later members continue its initialiser streams.
   * Train it with {@link memberLogits}, one loss per member, for an ensemble of independent nets.
   */
  members?: number;
  /**
   * Seeds the kernel initialisers (each layer its own stream, {@link layerInitSeed}) so that two
   * builds with the same spec and seed start from identical weights; omitted, tfjs draws from
   * Math.random.
   */
  seed?: number;
}

/** Raised for a spec no network can be built from; the message names the offending value. */
export class ModelSpecError extends Error {
  override readonly name = 'ModelSpecError';
}

/** Key under which the spec is stored in the model's user-defined metadata (survives save/load). */
export const SPEC_METADATA_KEY = 'detl';

/**
 * Which layers form which part of a built model, by name. Layer names follow one scheme in
 * every family: `stem_*` (ResNet's first conv), `block<N>_*` conv blocks (N = 1…5), `head_*`
 * the dense head whose last layer `head_predictions` outputs **logits** (no softmax: the loss
 * and Grad-CAM want pre-softmax scores; apply softmax for probabilities).
 */
export interface ArchitectureDescription {
  /** The family recorded in the model's metadata, or null for a model detl did not build. */
  architecture: Architecture | null;
  /** Every layer of the highest-numbered conv block, in order. */
  lastConvBlock: string[];
  /** The layer whose output feature maps Grad-CAM uses (last layer of the last block before pooling). */
  featureLayer: string;
  /** Layers after the conv base: flatten/pooling and dense layers. */
  head: string[];
  /** The last dense layer (logits); DETL replaces it. */
  predictionLayer: string;
  /** Weighted layers before the last conv block (frozen by DETL fine-tuning). */
  belowLastConvBlock: string[];
}

const HEAD_PREFIX = 'head_';
const PREDICTION_LAYER = 'head_predictions';
/** The layer that averages the members' logits into an ensemble model's output. */
export const ENSEMBLE_OUTPUT_LAYER = 'ensemble_logits';

/**
 * Layers per seed: no architecture has this many initialised layers (ResNet-50 has 54), so the
 * streams of two model seeds never meet.
 */
const LAYER_SEEDS_PER_MODEL_SEED = 1000;

/**
 * The initialiser seed of the `layerIndex`-th initialised layer (1-based) of a model seeded with
 * `seed`. Spaced so that consecutive model seeds draw disjoint streams: with `seed + layerIndex`,
 * seed 43's first layer drew seed 42's second layer's numbers, so a seed sweep's "independent"
 * initialisations shared all but one layer's stream.
 */
export function layerInitSeed(seed: number, layerIndex: number): number {
  if (layerIndex < 1 || layerIndex >= LAYER_SEEDS_PER_MODEL_SEED) throw new RangeError(`layer index ${layerIndex} outside 1…${LAYER_SEEDS_PER_MODEL_SEED - 1}`);
  return seed * LAYER_SEEDS_PER_MODEL_SEED + layerIndex;
}

class Builder {
  /** Current spatial side, tracked so a vanishing map is reported by layer name before tfjs sees it. */
  size: number;

  /**
   * @param layerIndex - initialised layers before this one's first (an earlier member's), so every
   *   member of a model draws its own streams
   * @param prefix - prepended to every layer name (`member<m>_` in an ensemble, '' otherwise)
   */
  constructor(
    readonly spec: ModelSpec,
    public layerIndex = 0,
    private readonly prefix = '',
  ) {
    this.size = spec.imageSize;
  }

  /** The model-wide name of a layer of this network. */
  name(layer: string): string {
    return this.prefix + layer;
  }

  width(base: number, layer: string): number {
    const units = Math.round(base * this.spec.widthMultiplier);
    if (units < 1) {
      throw new ModelSpecError(
        `widthMultiplier ${this.spec.widthMultiplier} leaves layer '${layer}' of ${this.spec.architecture} with ${units} filters/units (base ${base})`,
      );
    }
    return units;
  }

  init(): ReturnType<typeof initializers.glorotUniform> | 'glorotUniform' {
    this.layerIndex += 1;
    return this.spec.seed === undefined ? 'glorotUniform' : initializers.glorotUniform({ seed: layerInitSeed(this.spec.seed, this.layerIndex) });
  }

  private shrink(layer: string, kernel: number, stride: number, padding: 'same' | 'valid'): void {
    const next = padding === 'same' ? Math.ceil(this.size / stride) : Math.floor((this.size - kernel) / stride) + 1;
    if (next < 1) {
      throw new ModelSpecError(
        `imageSize ${this.spec.imageSize} is too small for ${this.spec.architecture}: layer '${layer}' gets a ${this.size}x${this.size} feature map and would output ${Math.max(next, 0)}x${Math.max(next, 0)}`,
      );
    }
    this.size = next;
  }

  conv(x: SymbolicTensor, name: string, filters: number, kernel: number, options: { stride?: number; padding?: 'same' | 'valid'; activation?: 'relu' | 'linear' } = {}): SymbolicTensor {
    const stride = options.stride ?? 1;
    const padding = options.padding ?? 'same';
    this.shrink(name, kernel, stride, padding);
    return tf.layers
      .conv2d({
        name: this.name(name),
        filters: this.width(filters, name),
        kernelSize: kernel,
        strides: stride,
        padding,
        activation: options.activation ?? 'relu',
        kernelInitializer: this.init(),
      })
      .apply(x) as SymbolicTensor;
  }

  maxPool(x: SymbolicTensor, name: string, pool: number, stride: number, padding: 'same' | 'valid' = 'valid'): SymbolicTensor {
    this.shrink(name, pool, stride, padding);
    return tf.layers.maxPooling2d({ name: this.name(name), poolSize: pool, strides: stride, padding }).apply(x) as SymbolicTensor;
  }

  zeroPad(x: SymbolicTensor, name: string, pad: number): SymbolicTensor {
    this.size += 2 * pad;
    return tf.layers.zeroPadding2d({ name: this.name(name), padding: pad }).apply(x) as SymbolicTensor;
  }

  dense(x: SymbolicTensor, name: string, units: number, activation: 'relu' | 'linear', scale = true): SymbolicTensor {
    return tf.layers
      .dense({ name: this.name(name), units: scale ? this.width(units, name) : units, activation, kernelInitializer: this.init() })
      .apply(x) as SymbolicTensor;
  }

  batchNorm(x: SymbolicTensor, name: string, momentum = 0.99): SymbolicTensor {
    // Keras' ResNet epsilon, so imported Keras statistics would behave the same.
    return tf.layers.batchNormalization({ name: this.name(name), axis: -1, epsilon: 1.001e-5, momentum }).apply(x) as SymbolicTensor;
  }
}

function vggBlocks(b: Builder, x: SymbolicTensor, blocks: ReadonlyArray<readonly [number, number]>): SymbolicTensor {
  let y = x;
  blocks.forEach(([filters, convs], index) => {
    const block = `block${index + 1}`;
    for (let c = 1; c <= convs; c += 1) y = b.conv(y, `${block}_conv${c}`, filters, 3);
    y = b.maxPool(y, `${block}_pool`, 2, 2);
  });
  return y;
}

function denseHead(b: Builder, x: SymbolicTensor, hidden: readonly number[]): SymbolicTensor {
  let y = tf.layers.flatten({ name: b.name(`${HEAD_PREFIX}flatten`) }).apply(x) as SymbolicTensor;
  hidden.forEach((units, index) => {
    y = b.dense(y, `${HEAD_PREFIX}fc${index + 1}`, units, 'relu');
  });
  return b.dense(y, PREDICTION_LAYER, b.spec.numClasses, 'linear', false);
}

/**
 * The CPU-sized VGG-style net: four blocks of two 3x3 convs (16/32/64/128 filters x width). Unlike
 * the paper's VGG-16 it normalises every conv output (conv → batch norm → ReLU): without it this
 * plain 8-conv stack sat at chance (loss ln 2) for the first epochs on the synthetic and real sets,
 * which a CPU budget of a handful of epochs cannot afford.
 */
function smallVgg(b: Builder, input: SymbolicTensor): SymbolicTensor {
  let y = input;
  ([16, 32, 64, 128] as const).forEach((filters, index) => {
    const block = `block${index + 1}`;
    for (let c = 1; c <= 2; c += 1) {
      y = b.conv(y, `${block}_conv${c}`, filters, 3, { activation: 'linear' });
      // A faster moving average than Keras' 0.99: CPU runs take a few hundred steps, and the
      // inference statistics must have caught up with the data by the end of them.
      y = b.batchNorm(y, `${block}_bn${c}`, 0.9);
      y = tf.layers.activation({ name: b.name(`${block}_relu${c}`), activation: 'relu' }).apply(y) as SymbolicTensor;
    }
    y = b.maxPool(y, `${block}_pool`, 2, 2);
  });
  return denseHead(b, y, [128]);
}

function vgg16(b: Builder, input: SymbolicTensor): SymbolicTensor {
  const base = vggBlocks(b, input, [
    [64, 2],
    [128, 2],
    [256, 3],
    [512, 3],
    [512, 3],
  ]);
  return denseHead(b, base, [4096, 4096]);
}

/**
 * AlexNet (single tower, no LRN, as in Keras/torchvision re-implementations) with every kernel
 * 3x3. Strides and pools are AlexNet's, so at 224 px the maps are 56 → 27 → 13 → 6 and the
 * dense head is AlexNet's 6·6·256 → 4096 → 4096 → classes. Five conv blocks of one conv each,
 * so `block5` is the last conv block as in the other families.
 */
function alexnet(b: Builder, input: SymbolicTensor): SymbolicTensor {
  let y = b.conv(input, 'block1_conv1', 96, 3, { stride: 4 });
  y = b.maxPool(y, 'block1_pool', 3, 2);
  y = b.conv(y, 'block2_conv1', 256, 3);
  y = b.maxPool(y, 'block2_pool', 3, 2);
  y = b.conv(y, 'block3_conv1', 384, 3);
  y = b.conv(y, 'block4_conv1', 384, 3);
  y = b.conv(y, 'block5_conv1', 256, 3);
  y = b.maxPool(y, 'block5_pool', 3, 2);
  return denseHead(b, y, [4096, 4096]);
}

function bottleneck(b: Builder, x: SymbolicTensor, name: string, filters: number, stride: number, projection: boolean): SymbolicTensor {
  const sizeIn = b.size;
  let shortcut = x;
  if (projection) {
    shortcut = b.conv(x, `${name}_0_conv`, 4 * filters, 1, { stride, padding: 'valid', activation: 'linear' });
    shortcut = b.batchNorm(shortcut, `${name}_0_bn`);
    b.size = sizeIn;
  }
  let y = b.conv(x, `${name}_1_conv`, filters, 1, { stride, padding: 'valid', activation: 'linear' });
  y = b.batchNorm(y, `${name}_1_bn`);
  y = tf.layers.activation({ name: b.name(`${name}_1_relu`), activation: 'relu' }).apply(y) as SymbolicTensor;
  y = b.conv(y, `${name}_2_conv`, filters, 3, { activation: 'linear' });
  y = b.batchNorm(y, `${name}_2_bn`);
  y = tf.layers.activation({ name: b.name(`${name}_2_relu`), activation: 'relu' }).apply(y) as SymbolicTensor;
  y = b.conv(y, `${name}_3_conv`, 4 * filters, 1, { activation: 'linear' });
  y = b.batchNorm(y, `${name}_3_bn`);
  y = tf.layers.add({ name: b.name(`${name}_add`) }).apply([shortcut, y]) as SymbolicTensor;
  return tf.layers.activation({ name: b.name(`${name}_out`), activation: 'relu' }).apply(y) as SymbolicTensor;
}

/**
 * ResNet-50 v1 as Keras' `keras.applications.ResNet50` (stride on the first 1x1 conv of each
 * stage's first block, biases on every conv, BN epsilon 1.001e-5), with Keras' conv2…conv5
 * stages named block2…block5 and its 7x7 stem named `stem_`.
 */
function resnet50(b: Builder, input: SymbolicTensor): SymbolicTensor {
  let y = b.zeroPad(input, 'stem_pad', 3);
  y = b.conv(y, 'stem_conv', 64, 7, { stride: 2, padding: 'valid', activation: 'linear' });
  y = b.batchNorm(y, 'stem_bn');
  y = tf.layers.activation({ name: b.name('stem_relu'), activation: 'relu' }).apply(y) as SymbolicTensor;
  y = b.zeroPad(y, 'stem_pool_pad', 1);
  y = b.maxPool(y, 'stem_pool', 3, 2);
  const stages: ReadonlyArray<readonly [number, number, number]> = [
    [64, 3, 1],
    [128, 4, 2],
    [256, 6, 2],
    [512, 3, 2],
  ];
  stages.forEach(([filters, blocks, stride], index) => {
    for (let i = 0; i < blocks; i += 1) {
      const name = `block${index + 2}_${String.fromCharCode(97 + i)}`;
      y = bottleneck(b, y, name, filters, i === 0 ? stride : 1, i === 0);
    }
  });
  y = tf.layers.globalAveragePooling2d({ name: b.name(`${HEAD_PREFIX}avg_pool`) }).apply(y) as SymbolicTensor;
  return b.dense(y, PREDICTION_LAYER, b.spec.numClasses, 'linear', false);
}

const BUILDERS: Record<Architecture, (b: Builder, input: SymbolicTensor) => SymbolicTensor> = {
  'small-vgg': smallVgg,
  alexnet,
  vgg16,
  resnet50,
};

/**
 * Checks a spec and throws a {@link ModelSpecError} naming the bad value; {@link buildModel}
 * calls it first, callers may call it to validate a configuration before any training starts.
 */
export function validateModelSpec(spec: ModelSpec): void {
  if (!(ARCHITECTURES as readonly string[]).includes(spec.architecture)) {
    throw new ModelSpecError(`unknown architecture '${String(spec.architecture)}'; expected one of ${ARCHITECTURES.join(', ')}`);
  }
  if (!Number.isInteger(spec.numClasses) || spec.numClasses < 2) {
    throw new ModelSpecError(`numClasses must be an integer ≥ 2, got ${spec.numClasses}`);
  }
  if (!(spec.widthMultiplier > 0) || !Number.isFinite(spec.widthMultiplier)) {
    throw new ModelSpecError(`widthMultiplier must be a positive number, got ${spec.widthMultiplier}`);
  }
  if (!Number.isInteger(spec.imageSize) || spec.imageSize < 1) {
    throw new ModelSpecError(`imageSize must be a positive integer, got ${spec.imageSize}`);
  }
  if (spec.channels !== 1 && spec.channels !== 3) {
    throw new ModelSpecError(`channels must be 1 or 3, got ${String(spec.channels)}`);
  }
  const members = spec.members ?? 1;
  if (!Number.isInteger(members) || members < 1 || members > MAX_MODEL_MEMBERS) {
    throw new ModelSpecError(`members must be an integer 1…${MAX_MODEL_MEMBERS}, got ${members}`);
  }
}

/**
 * Builds one of the paper's networks (or the small CPU default) as a functional tfjs-layers
 * model whose output is the logits of `head_predictions`. The spec is stored in the model's
 * user-defined metadata under {@link SPEC_METADATA_KEY}, so saved checkpoints know what they are.
 *
 * At width 1, 224 px, 3 channels and 1000 classes the parameter counts are Keras': VGG-16
 * 138,357,544; ResNet-50 25,636,712; AlexNet-3x3 61,952,872 (single-tower AlexNet's 62,378,344
 * minus the weights the 11x11 and 5x5 kernels had over 3x3 ones).
 * @throws ModelSpecError for an unknown architecture, numClasses < 2, a width multiplier that
 * leaves a layer without filters, or an image size that makes a feature map vanish.
 */
export function buildModel(spec: ModelSpec): tf.LayersModel {
  validateModelSpec(spec);
  const members = spec.members ?? 1;
  const input = tf.input({ shape: [spec.imageSize, spec.imageSize, spec.channels], name: 'input' });
  // One network keeps its unprefixed layer names; an ensemble's members continue each other's
  // initialiser streams, so member 1 is the single network of the same seed.
  const logits: SymbolicTensor[] = [];
  let layerIndex = 0;
  for (let member = 1; member <= members; member += 1) {
    const builder = new Builder(spec, layerIndex, members === 1 ? '' : `member${member}_`);
    logits.push(BUILDERS[spec.architecture](builder, input));
    layerIndex = builder.layerIndex;
  }
  const output = members === 1 ? (logits[0] as SymbolicTensor) : (tf.layers.average({ name: ENSEMBLE_OUTPUT_LAYER }).apply(logits) as SymbolicTensor);
  const model = tf.model({ inputs: input, outputs: output, name: spec.architecture.replace('-', '_') });
  // A single network's metadata stays as it was before ensembles existed.
  const { seed: _seed, members: _members, ...shape } = spec;
  model.setUserDefinedMetadata({ [SPEC_METADATA_KEY]: members === 1 ? shape : { ...shape, members } });
  return model;
}

/**
 * The logits tensor of every member of a model, in member order: the inputs of an ensemble's
 * {@link ENSEMBLE_OUTPUT_LAYER}, or the single output of any other model. Training takes one loss
 * per member over these (so each member learns as if alone); prediction uses the model's output,
 * their mean.
 */
export function memberLogits(model: tf.LayersModel): SymbolicTensor[] {
  const output = model.outputs[0];
  if (output === undefined) throw new Error(`model '${model.name}' has no output`);
  if (model.outputs.length !== 1 || output.sourceLayer.name !== ENSEMBLE_OUTPUT_LAYER) return [...model.outputs];
  const node = output.sourceLayer.inboundNodes[output.nodeIndex];
  if (node === undefined) throw new Error(`'${ENSEMBLE_OUTPUT_LAYER}' of model '${model.name}' has no inputs`);
  return [...node.inputTensors];
}

/** The spec a model was built from, read from its metadata; null for models detl did not build. */
export function modelSpecOf(model: tf.LayersModel): ModelSpec | null {
  const metadata = model.getUserDefinedMetadata() as Record<string, unknown> | undefined;
  const spec = metadata?.[SPEC_METADATA_KEY] as ModelSpec | undefined;
  return spec && (ARCHITECTURES as readonly string[]).includes(spec.architecture) ? spec : null;
}

function blockNumber(name: string): number | null {
  const match = /^block(\d+)_/.exec(name);
  return match ? Number(match[1]) : null;
}

/**
 * Splits a detl-built model into conv base, last conv block and head by layer name.
 * @throws Error when the model does not follow the `block<N>_` / `head_` naming.
 */
export function describeArchitecture(model: tf.LayersModel): ArchitectureDescription {
  const names = model.layers.map((layer) => layer.name);
  const blocks = names.map(blockNumber).filter((n): n is number => n !== null);
  if (blocks.length === 0 || !names.includes(PREDICTION_LAYER)) {
    throw new Error(`model '${model.name}' has no block<N>_ conv layers or no ${PREDICTION_LAYER} layer; it was not built by buildModel`);
  }
  const last = Math.max(...blocks);
  const lastConvBlock = names.filter((name) => blockNumber(name) === last);
  const head = names.filter((name) => name.startsWith(HEAD_PREFIX));
  const withoutPools = lastConvBlock.filter((name) => !name.endsWith('_pool'));
  const weighted = new Set(model.layers.filter((layer) => layer.weights.length > 0).map((layer) => layer.name));
  return {
    architecture: modelSpecOf(model)?.architecture ?? null,
    lastConvBlock,
    featureLayer: withoutPools[withoutPools.length - 1] ?? (lastConvBlock[lastConvBlock.length - 1] as string),
    head,
    predictionLayer: PREDICTION_LAYER,
    belowLastConvBlock: names.filter((name) => weighted.has(name) && !lastConvBlock.includes(name) && !head.includes(name)),
  };
}
