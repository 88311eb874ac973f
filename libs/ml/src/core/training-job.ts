import type { BackendInfo, BackendPreference } from './backend';
import type { FreezeMode } from './fine-tune';
import type { Architecture, ModelSpec } from './models';
import type { EpochMetrics, TrainingStage } from './train';

/** Fields every training job has. All paths are local to the machine running the job. */
interface TrainingJobBase {
  /** Directory the job writes to: `epoch-<n>/` per epoch, `best/`, `result.json`. */
  outputDir: string;
  /** Training images, written with `writeLabelledImages`. */
  trainFile: string;
  /** Validation images evaluated after every epoch; the best epoch's weights are kept. */
  validationFile?: string;
  stage: TrainingStage;
  seed: number;
  /** tfjs backend of the child (default `auto`; `DETL_TF_BACKEND` still overrides). */
  backend?: BackendPreference;
  /** TensorFlow intra-op threads of the child on the native backends (default: every core). */
  threads?: number;
  /** Continue from an epoch checkpoint (model + optimizer state) instead of starting over. */
  resumeFrom?: { epoch: number; modelDir: string };
}

/** Scratch training of a freshly built network (the paper's Data-A pretraining). */
export interface PretrainJob extends TrainingJobBase {
  kind: 'pretrain';
  model: ModelSpec;
}

/** DETL fine-tuning of a pretrained network on one fold, evaluated on the held-out fold. */
export interface FineTuneJob extends TrainingJobBase {
  kind: 'fine-tune';
  /**
   * Checkpoint directory of the pretrained model (ignored when resuming); null only for
   * `freeze: 'scratch'`, which then builds {@link FineTuneJob.model} afresh.
   */
  initialModelDir: string | null;
  /** Network to build when there is no pretrained model (`freeze: 'scratch'`); its numClasses is replaced by {@link FineTuneJob.numClasses}. */
  model?: ModelSpec;
  numClasses: number;
  freeze: FreezeMode;
  /** Expected architecture of the pretrained checkpoint; another one is rejected by name. */
  architecture?: Architecture;
  /** Held-out images the final model is evaluated on. */
  testFile: string;
  /**
   * Score the held-out images with test-time flip averaging (the config's
   * `evaluation.testTimeFlip`): each image's softmax averaged with its mirror's. Default false.
   */
  testTimeFlip?: boolean;
}

/** What {@link runTrainingJob} runs. */
export type TrainingJob = PretrainJob | FineTuneJob;

/** Predictions of the final model on a test set. */
export interface TestEvaluation {
  /** True labels, in file order. */
  labels: number[];
  /** Arg-max class per image. */
  predictedClass: Int32Array;
  /** Softmax probabilities, one array of numClasses per image. */
  probabilities: number[][];
  /** counts[true][predicted]. */
  confusionMatrix: number[][];
  accuracy: number;
  /** Mean cross-entropy. */
  loss: number;
}

/** Outcome of a training job. */
export interface TrainingJobResult {
  kind: TrainingJob['kind'];
  backend: BackendInfo;
  /** Metrics of the epochs this run trained (after `resumeFrom.epoch` when resuming). */
  epochs: EpochMetrics[];
  /** Epoch whose weights are in `bestDir` (the last one without validation data). */
  bestEpoch: number;
  bestValidationAccuracy: number | null;
  /** Checkpoint of the kept weights: `outputDir/best`. */
  bestDir: string;
  /** Fine-tune jobs only: the kept model on the test set. */
  test: TestEvaluation | null;
  durationMs: number;
}

/** Per-epoch report of a running job. */
export type TrainingJobEpoch = EpochMetrics & { checkpointDir: string };

/** Messages from the child to the parent. Int32Array travels through IPC as a plain array. */
export type ChildMessage =
  | { type: 'epoch'; metrics: TrainingJobEpoch }
  | { type: 'result'; result: Omit<TrainingJobResult, 'test'> & { test: (Omit<TestEvaluation, 'predictedClass'> & { predictedClass: number[] }) | null } }
  | { type: 'error'; message: string; name: string; stack?: string };

/** Message from the parent to the child. */
export interface ParentMessage {
  type: 'job';
  job: TrainingJob;
}
