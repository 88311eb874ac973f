import type { PointingGameReport, TrainingRuntime } from '@detl/ml';
import type { ExperimentConfig } from '@detl/config';
import type { ResultSummary } from '@detl/tracking';

/** Where a tracked run's record lives; every activity receives it. */
export interface ExperimentRef {
  experimentId: string;
}

/** Input of {@link DetlActivities.registerExperiment}. */
export interface RegisterExperimentInput {
  workflowId: string;
  config: ExperimentConfig;
  /** The sweep that started the experiment, and its index in the sweep's plan. */
  sweep?: { id: string; index: number };
}

/** Result of {@link DetlActivities.sampleDataset}. */
export interface SampleDatasetResult {
  manifestKey: string;
  /** Data-B images per class, Data-A train/validation sizes. */
  counts: { dataB: Record<string, number>; dataA: { train: number; validation: number } };
  shardsWritten: number;
  shardsReused: number;
  warnings: string[];
}

/** Result of {@link DetlActivities.pretrainFromScratch}. */
export interface PretrainResult {
  /** Object-store prefix of the kept (best-validation) model. */
  modelPrefix: string;
  bestEpoch: number;
  bestValidationAccuracy: number | null;
  epochsRun: number;
  backend: string;
  /** Backend, TensorFlow version and threads the training ran with (kept in the attempt's details). */
  runtime: TrainingRuntime;
}

/** Input of {@link DetlActivities.fineTuneFold}. */
export interface FineTuneFoldInput extends ExperimentRef {
  config: ExperimentConfig;
  manifestKey: string;
  /** The pretrained model; null for the scratch baseline (`fineTune.freeze: 'scratch'`). */
  pretrainedModelPrefix: string | null;
  /** Zero-based index of the held-out fold. */
  fold: number;
}

/** One fold's held-out evaluation. */
export interface FoldResult {
  fold: number;
  accuracy: number;
  /** Rows are actual classes, columns predicted, in DATA_B_CLASSES order. */
  confusionMatrix: number[][];
  trainCount: number;
  testCount: number;
  modelPrefix: string;
  /** JSON with image ids, actual and predicted classes and probabilities for the held-out images. */
  predictionsKey: string;
  /** Backend, TensorFlow version and threads the training ran with (kept in the attempt's details). */
  runtime: TrainingRuntime;
}

/** Cross-validated result of one experiment, as stored in the run record. */
export type ExperimentSummary = ResultSummary;

/** Result of {@link DetlActivities.generateGradCams}. */
export interface GradCamResult {
  overlayKeys: string[];
  /** The gallery index saying what each overlay shows (`readGradCamGallery` of `@detl/storage` reads it). */
  galleryKey: string;
  /**
   * Share of correctly classified lesion images whose heatmap peak falls on the lesion mask within
   * Zhang et al.'s tolerance (15 px at 224 px, scaled; see `pointing-game-report` in `@detl/ml`), when masks exist.
   */
  pointingGameRate: number | null;
  /** The same trials in detail: tolerant and exact rates, overall and per class; null without masks. */
  pointingGame: PointingGameReport | null;
}

/** Final state written to the run record. */
export interface FinishExperimentInput extends ExperimentRef {
  status: 'succeeded' | 'failed' | 'cancelled';
  error?: string;
  summary?: ExperimentSummary;
}
