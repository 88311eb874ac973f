import { z } from 'zod';

/** The four Data-B classes, in the order every confusion matrix and model head uses. */
export const DATA_B_CLASSES = ['normal', 'pneumonia', 'other_disease', 'covid'] as const;
/** A Data-B class name. */
export type DataBClass = (typeof DATA_B_CLASSES)[number];
/** The two Data-A classes of the pretraining (source) task. */
export const DATA_A_CLASSES = ['normal', 'diseased'] as const;

const positiveInt = z.number().int().positive();

const augmentationSchema = z.strictObject({
  /** Maximum absolute rotation, in degrees. */
  rotationDegrees: z.number().min(0).max(45).default(10),
  /** Maximum relative zoom in or out (0.1 = ±10%). */
  scale: z.number().min(0).max(0.5).default(0.1),
  /** Mirror left-right with probability 0.5. */
  horizontalFlip: z.boolean().default(true),
  /**
   * Maximum shift, in whole pixels, along each axis (absent = 0): each image moves by a random
   * integer offset, edges replicated. Whole-pixel shifts move pixels without resampling them, so
   * unlike rotation and zoom they never blur the fine texture a 64 px X-ray is classified by.
   */
  translatePixels: z.number().int().min(0).max(16).optional(),
});

const syntheticSourceSchema = z.strictObject({
  kind: z.literal('synthetic'),
  /** Images generated per Data-B class; Data-A images are generated for other patients. */
  imagesPerClass: positiveInt.default(80),
  /** Images generated per Data-A class (normal / diseased). */
  pretrainImagesPerClass: positiveInt.default(200),
});

const folderSourceSchema = z.strictObject({
  kind: z.literal('folder'),
  /** Folder with one sub-folder per class (`normal/`, `pneumonia/`, …), optionally a labels.csv with patient ids. */
  root: z.string().min(1),
});

const manifestSourceSchema = z.strictObject({
  kind: z.literal('manifest'),
  /** Key of a manifest already in the object store (`detl data import` prints it), e.g. `manifests/<sha256>.json`. */
  key: z.string().regex(/^manifests\/[0-9a-f]{64}\.json$/, 'expected manifests/<sha256>.json'),
});

const datasetSchema = z.strictObject({
  source: z.discriminatedUnion('kind', [syntheticSourceSchema, folderSourceSchema, manifestSourceSchema]).prefault({ kind: 'synthetic' }),
  /** Side of the square greyscale images the networks see, in pixels. */
  imageSize: z.number().int().min(16).max(512).default(64).describe('side of the square greyscale images, in pixels'),
  /** Number of cross-validation folds over Data-B (grouped by patient, stratified by class). */
  folds: z.number().int().min(2).max(10).default(5).describe('cross-validation folds over Data-B (patient-grouped, class-stratified)'),
  /** Upper bound of Data-B images per class (the paper: 350/322/300/305); null takes all available. */
  maxImagesPerClass: positiveInt.nullable().default(null),
  /** Share of patients of the source kept for Data-A pretraining instead of Data-B (folder sources only). */
  pretrainPatientShare: z.number().gt(0).lt(1).default(0.5),
  /** Share of Data-A held out for per-epoch validation. */
  pretrainValidationShare: z.number().gt(0).lt(1).default(0.2),
  /** What to do with an unreadable image: stop the run, or report it and leave it out. */
  onCorruptImage: z.enum(['fail', 'skip']).default('fail').describe('an unreadable image stops the work (fail), or is reported and left out (skip)'),
  /**
   * Removes the resolution shortcut of mixed sources: `degrade` shrinks every image to this many
   * pixels and back before use, so sharpness no longer tells the source; null leaves images as they are.
   */
  degradeToPixels: z
    .number()
    .int()
    .min(8)
    .max(512)
    .nullable()
    .default(null)
    .describe('shrink every image to this many pixels and back (removes the resolution shortcut of mixed sources)'),
  /**
   * Which patients Data-B (the cross-validation folds) holds. `exclude-data-a` (default) keeps the
   * `pretrainPatientShare` of normal / other_disease patients out for pretraining, so every recipe
   * of an ablation (DETL frozen, unfrozen, scratch) is tested on one and the same Data-B. `all` puts
   * every patient the source does not mark `subset` A into Data-B: for a recipe without pretraining
   * (`fineTune.freeze: 'scratch'`) about a quarter more images, but its accuracy is then not
   * comparable with an ablation's.
   */
  dataB: z
    .enum(['exclude-data-a', 'all'])
    .default('exclude-data-a')
    .describe("patients in Data-B: all but the pretraining share (exclude-data-a), or all (scratch recipes only)"),
});

/**
 * The regularising levers of a training stage (issue 11's "fair levers"), the same fields for
 * pretraining and fine-tuning; every default leaves training as it was without them.
 */
const trainingLevers = {
  /**
   * Label smoothing ε of the training loss (Keras' convention): the one-hot target becomes
   * `onehot·(1 − ε) + ε / classes`. 0 trains on the plain one-hot labels; evaluation losses are never smoothed.
   */
  labelSmoothing: z.number().min(0).max(0.5).default(0).describe('label smoothing of the training loss: targets become onehot*(1-e)+e/classes (0: off)'),
  /**
   * `balanced` weights each training image's loss by n_total / (n_classes · n_class), counted on
   * the stage's training set (scikit-learn's `balanced`), and the batch loss is the weighted mean;
   * `none` weights every image alike. Accuracy is never weighted.
   */
  classWeighting: z
    .enum(['none', 'balanced'])
    .default('none')
    .describe('weight each image\'s loss by n_total/(n_classes*n_class) of the training set (balanced), or not (none)'),
  /**
   * Decoupled weight decay λ (AdamW / SGDW, Loshchilov & Hutter): at every step each trainable
   * kernel (conv and dense kernels; not biases, not batch-norm gamma / beta) is multiplied by
   * (1 − lr_t·λ), lr_t being that step's scheduled learning rate, and the optimizer's update from
   * the gradient at the undecayed weights is added (PyTorch's AdamW order). It is not an L2 term
   * in the loss, so Adam's moments never see it. 0 turns it off.
   */
  weightDecay: z.number().min(0).max(0.1).default(0).describe('decoupled weight decay: each step multiplies trainable kernels by (1 - lr*decay) (0: off)'),
};

// Defaults sized for the demo on the native engine: the whole experiment in about 4 minutes on 2 cores.
const pretrainSchema = z.strictObject({
  // 30, not 12: longer pretraining gave the fine-tuned demo nets features that sit on the lesions. Over
  // seeds 42 / 2 / 7 (with 40 fine-tuning epochs) the Grad-CAM++ pointing game pooled 79.2% at 12,
  // 83.6% at 20 and 86.8% at 30 epochs; accuracy 87.1%, 89.2% and 86.8% (README has every seed).
  epochs: positiveInt.default(30),
  batchSize: positiveInt.default(16),
  optimizer: z.enum(['adam', 'sgd']).default('adam'),
  learningRate: z.number().positive().default(1e-3),
  momentum: z.number().min(0).lt(1).default(0.9),
  schedule: z.enum(['cosine', 'constant']).default('cosine'),
  augmentation: augmentationSchema.prefault({}),
  ...trainingLevers,
});

const fineTuneSchema = z.strictObject({
  // 40, not 15: with the paper's SGD 1e-4 the head was still learning at 15 (train loss 0.6–0.7 and
  // falling), and the demo's folds ranged 55–91%. At 40 its accuracy over seeds 42 / 2 / 7 went
  // from 74.7% to 87.1% and its pointing game from 76.1% to 79.2%, for about a minute more.
  epochs: positiveInt.default(40),
  batchSize: positiveInt.default(16),
  optimizer: z.enum(['sgd', 'adam']).default('sgd'),
  learningRate: z.number().positive().default(1e-4),
  momentum: z.number().min(0).lt(1).default(0.9),
  schedule: z.enum(['cosine', 'constant']).default('constant'),
  /**
   * Which pretrained layers stay fixed: the paper freezes everything below the last conv block;
   * `none` fine-tunes everything; `all-but-head` trains the new dense head only;
   * `scratch` ignores the pretrained weights (the 4-class baseline of the ablation).
   */
  freeze: z.enum(['below-last-conv-block', 'none', 'all-but-head', 'scratch']).default('below-last-conv-block'),
  augmentation: augmentationSchema.prefault({ rotationDegrees: 5, scale: 0.05 }),
  ...trainingLevers,
});

/**
 * Most networks a model may hold (`model.members`): libs/ml gives each member's layers their own
 * initialiser streams within one seed's range, which 8 ResNet-50s still fit.
 */
export const MAX_MODEL_MEMBERS = 8;

const modelSchema = z.strictObject({
  architecture: z.enum(['small-vgg', 'alexnet', 'vgg16', 'resnet50']).default('small-vgg'),
  /** Multiplies every layer's filter / unit count; 1 is the standard architecture. */
  widthMultiplier: z.number().positive().max(4).default(1),
  /**
   * Independently initialised copies of the network trained side by side on the same batches, each
   * on its own loss, whose logits are averaged at prediction time: an ensemble inside one model, so
   * checkpoints, resume, prediction and Grad-CAM treat it as one network (at `members` times the
   * cost). Member 1 starts from the weights a single network of the same seed has. Only for
   * `fineTune.freeze: 'scratch'`: a pretrained base is one network.
   */
  members: z.number().int().min(1).max(MAX_MODEL_MEMBERS).default(1),
});

/**
 * The ways detl makes a class-activation map (`gradCam.method`), exported so that records naming a
 * method (the pointing game's report) validate against the same list.
 */
export const gradCamMethodSchema = z.enum(['grad-cam', 'hires-cam', 'grad-cam++']);

/**
 * The method of every map made before `gradCam.method` existed: what a stored config, pointing-game
 * record or in-flight workflow input without the field means (today's default is another).
 */
export const GRAD_CAM_METHOD_BEFORE_OPTION = 'grad-cam' as const;

const gradCamSchema = z.strictObject({
  /** Correctly and incorrectly classified images explained per class (from the held-out folds). */
  imagesPerClass: z.number().int().min(0).max(50).default(2),
  /**
   * How a class-activation map is made from the explained layer's feature maps A^k and the class
   * score's gradient ∂y^c/∂A^k, wherever detl makes one (the Grad-CAM stage and its pointing game,
   * `detl predict`, the dashboard's screening):
   * - `grad-cam` (Selvaraju et al. 2017): one weight per channel, the gradient's spatial mean;
   *   ReLU(Σ_k mean(∂y^c/∂A^k) A^k).
   * - `hires-cam` (Draelos & Carin 2020): the element-wise product, summed over channels;
   *   ReLU(Σ_k ∂y^c/∂A^k ⊙ A^k). For a Flatten → Dense head it is exactly each position's share of
   *   the score (small-vgg's ReLU hidden layer makes it the share at this image), which Grad-CAM's
   *   one weight per channel discards.
   * - `grad-cam++` (Chattopadhyay et al. 2018, Eq. 19 with the exponential's higher derivatives
   *   written through the first, as the authors derive): one weight per channel, the positive
   *   gradients weighted by α = g² / (2g² + Σ_ab A^k_ab · g³), g = ∂y^c/∂A^k_ij (0 where that is
   *   undefined); ReLU(Σ_k (Σ_ij α_ij ReLU(g_ij)) A^k). The positive gradients are not cancelled by
   *   the negative ones that Grad-CAM's mean averages in.
   * All are upsampled and normalised the same way. The default is `grad-cam++`: on the demo's fold
   * models (small-vgg's Flatten → Dense head, three seeds) it points at the synthetic lesions 87% of
   * the time against Grad-CAM's 76% and HiResCAM's 71% (README); set `grad-cam` for the paper's own
   * method (`configs/paper-vgg16.json` does). Runs recorded before this option existed read back as
   * `grad-cam`, the method they used (`@detl/tracking`'s config column).
   */
  method: gradCamMethodSchema
    .default('grad-cam++')
    .describe('class-activation map: grad-cam (channel-averaged gradient), hires-cam (element-wise gradient × activation) or grad-cam++ (α-weighted positive gradients)'),
});

const evaluationSchema = z.strictObject({
  /**
   * Test-time flip averaging: wherever a trained model scores an image (the held-out fold of a
   * fine-tuning, `detl predict`, `detl evaluate`, the dashboard's screening), the softmax of the
   * image and of its left-right mirror are averaged, and the class, accuracy and confusion matrix
   * follow the averaged probabilities. Grad-CAM still explains the image as it is.
   */
  testTimeFlip: z.boolean().default(false).describe("average each image's softmax with its left-right mirror's when scoring"),
});

const runtimeSchema = z.strictObject({
  /** tfjs backend; `auto` tries tensorflow-gpu, then tensorflow (tfjs-node), then wasm. */
  backend: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto').describe('tfjs backend: auto tries tensorflow-gpu, tensorflow, then wasm'),
  /**
   * Threads of one training process on the native backends (TensorFlow's intra-op pool). `auto`
   * leaves it to the worker, which divides its cores by the trainings it runs at once, so
   * parallel folds never oversubscribe the machine.
   */
  threads: z
    .union([z.literal('auto'), z.number().int().min(1).max(256)])
    .default('auto')
    .describe("TensorFlow intra-op threads of one training (auto: the worker's cores ÷ its concurrent trainings)"),
  /**
   * A training activity whose worker sent no heartbeat for this long is retried elsewhere (it
   * heartbeats every 10 s from an event loop that training never blocks). It bounds how long a
   * crashed or killed worker delays the run.
   */
  heartbeatTimeoutSeconds: z.number().int().min(15).max(3600).default(30),
});

/** Full, validated configuration of one DETL experiment. Unknown keys are rejected at every level. */
export const experimentConfigSchema = z.strictObject({
  name: z.string().min(1).max(200).default('detl-experiment'),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(42)
    .describe('seed of sampling, fold assignment, initialisation and augmentation'),
  dataset: datasetSchema.prefault({}),
  model: modelSchema.prefault({}),
  pretrain: pretrainSchema.prefault({}),
  fineTune: fineTuneSchema.prefault({}),
  gradCam: gradCamSchema.prefault({}),
  evaluation: evaluationSchema.prefault({}),
  runtime: runtimeSchema.prefault({}),
}).superRefine((config, context) => {
  // Pretraining learns from Data-A; with every patient in Data-B there is nothing left to pretrain on.
  if (config.dataset.dataB === 'all' && config.fineTune.freeze !== 'scratch') {
    context.addIssue({
      code: 'custom',
      path: ['dataset', 'dataB'],
      message: `'all' leaves no patients for pretraining; it needs fineTune.freeze 'scratch' (got '${config.fineTune.freeze}')`,
    });
  }
  if (config.model.members > 1 && config.fineTune.freeze !== 'scratch') {
    context.addIssue({
      code: 'custom',
      path: ['model', 'members'],
      message: `${config.model.members} members need fineTune.freeze 'scratch': DETL fine-tunes one pretrained network (got freeze '${config.fineTune.freeze}')`,
    });
  }
});

/** A complete experiment configuration, every default filled in. */
export type ExperimentConfig = z.output<typeof experimentConfigSchema>;
/** What a user may write: any subset of {@link ExperimentConfig}. */
export type ExperimentConfigInput = z.input<typeof experimentConfigSchema>;
/** Augmentation settings of one training stage. */
export type AugmentationConfig = z.output<typeof augmentationSchema>;
/**
 * Settings of one training stage (pretraining or fine-tuning): the recipe libs/ml trains with.
 * Fine-tuning's settings are a superset (they add `freeze`), so both stages fit.
 */
export type TrainingStageConfig = z.output<typeof pretrainSchema>;
/** How trained models score images (`evaluation`): test-time flip averaging. */
export type EvaluationConfig = z.output<typeof evaluationSchema>;
/** A training stage's class weighting (`classWeighting`). */
export type ClassWeighting = TrainingStageConfig['classWeighting'];
/** Which pretrained layers stay fixed while fine-tuning (`fineTune.freeze`). */
export type FreezeMode = z.output<typeof fineTuneSchema>['freeze'];
/** Every {@link FreezeMode}, in the schema's order. */
export const FREEZE_MODES: readonly FreezeMode[] = fineTuneSchema.shape.freeze.unwrap().options;
/** How a class-activation map is made (`gradCam.method`): `grad-cam`, `hires-cam` or `grad-cam++`. */
export type GradCamMethod = z.output<typeof gradCamMethodSchema>;
/** Every {@link GradCamMethod}, in the order they were added (the default is `grad-cam++`). */
export const GRAD_CAM_METHODS: readonly GradCamMethod[] = gradCamMethodSchema.options;
/** A tfjs backend preference (`runtime.backend`): `auto` or one backend by name. */
export type BackendPreference = z.output<typeof runtimeSchema>['backend'];
/** Every {@link BackendPreference}, `auto` first. */
export const BACKEND_PREFERENCES: readonly BackendPreference[] = runtimeSchema.shape.backend.unwrap().options;

/** Raised when a configuration does not validate; the message names every offending field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    /** Dotted paths of the offending fields, e.g. `pretrain.epochs`. */
    readonly fields: string[],
  ) {
    super(message);
  }
}

/**
 * Validates a raw configuration (parsed JSON, CLI overrides merged in) and fills in defaults.
 * @param origin where the value came from, quoted in error messages (a file path or `--set`).
 * @throws ConfigError naming each bad or unknown field.
 */
export function parseExperimentConfig(raw: unknown, origin = 'config'): ExperimentConfig {
  const result = experimentConfigSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const base = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: base ? `${base}.${key}` : key, text: 'unknown key' }));
    }
    return [{ field: base || '(root)', text: issue.message }];
  });
  const flat = problems.flat();
  const lines = flat.map((problem) => `  ${problem.field}: ${problem.text}`);
  return raiseConfigError(`${origin}: invalid experiment configuration\n${lines.join('\n')}`, flat.map((p) => p.field));
}

function raiseConfigError(message: string, fields: string[]): never {
  throw new ConfigError(message, fields);
}

/**
 * Applies `path=value` overrides (as given to `--set`) onto a raw configuration object.
 * Values are parsed as JSON when they parse, otherwise kept as strings.
 * @throws ConfigError when an override is not of the form `a.b.c=value`.
 */
export function applyConfigOverrides(raw: Record<string, unknown>, overrides: readonly string[]): Record<string, unknown> {
  const result: Record<string, unknown> = structuredClone(raw);
  for (const override of overrides) {
    const separator = override.indexOf('=');
    const path = separator > 0 ? override.slice(0, separator).split('.') : [];
    if (path.length === 0 || path.some((part) => part.length === 0)) {
      raiseConfigError(`--set ${override}: expected <dotted.path>=<value>`, [override]);
    }
    const text = override.slice(separator + 1);
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      value = text;
    }
    let node: Record<string, unknown> = result;
    for (const part of path.slice(0, -1)) {
      const child = node[part];
      if (typeof child !== 'object' || child === null || Array.isArray(child)) node[part] = {};
      node = node[part] as Record<string, unknown>;
    }
    node[path[path.length - 1] as string] = value;
  }
  return result;
}
