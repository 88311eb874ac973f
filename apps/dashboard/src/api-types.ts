// The dashboard's wire format, shared by the server and the browser bundle. Plain JSON shapes only
// (dates as ISO strings). The JSON columns' shapes (the run summary, a sweep's plan) come from their
// zod schemas through `@detl/tracking/json-shapes`, which is Node-free (zod only), so the client's
// type check reaches no server library; tools/module-boundaries.test.ts keeps it so.
import type { GradCamMethod } from '@detl/config/experiment-config';
import type { ClassMetrics, ResultSummary, SweepPlanEntry } from '@detl/tracking/json-shapes';

/** Lifecycle of a run. */
export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** One row of `GET /api/runs`. */
export interface RunListItemJson {
  id: string;
  name: string;
  status: RunStatus;
  architecture: string | null;
  dataset: string | null;
  imageSize: number | null;
  backend: string | null;
  meanAccuracy: number | null;
  stdAccuracy: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  error: string | null;
  /** The sweep the run belongs to (and its index in the sweep's plan); null outside sweeps. */
  sweep: { id: string; name: string; index: number | null } | null;
}

/** `GET /api/runs`. */
export interface RunListResponse {
  items: RunListItemJson[];
  /** Matches, counted up to a cap (2,000). */
  total: number;
  /** True when there are more matches than `total` says. */
  totalIsLowerBound: boolean;
  page: number;
  pageSize: number;
}

/** `GET /api/facets`: the values the run filters offer. */
export interface FacetsResponse {
  statuses: RunStatus[];
  architectures: string[];
  sortFields: string[];
}

/** Per-class metrics of the summed confusion matrix (`classMetricsSchema`). */
export type ClassMetricsJson = ClassMetrics;

/**
 * The aggregated result of a run (`experiments.summary`), as `resultSummarySchema` parses it: the
 * server sends the parsed column as it is, per-class-and-source cells and pointing game included.
 */
export type SummaryJson = ResultSummary;

/** One attempt of one activity. */
export interface StageAttemptJson {
  stage: string;
  task: string;
  attempt: number;
  status: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  error: string | null;
  workerIdentity: string;
  details: Record<string, unknown>;
}

/** Metrics of one epoch. */
export interface EpochJson {
  task: string;
  attempt: number;
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  validationLoss: number | null;
  validationAccuracy: number | null;
  learningRate: number;
  durationMs: number;
}

/** One cross-validation fold. */
export interface FoldJson {
  foldIndex: number;
  status: 'running' | 'succeeded' | 'failed';
  trainCount: number;
  testCount: number;
  accuracy: number | null;
  confusionMatrix: number[][] | null;
}

/** One object the run wrote; `url` streams it through the dashboard. */
export interface ArtifactJson {
  kind: string;
  key: string;
  sizeBytes: number;
  contentType: string;
  sha256: string;
  url: string;
}

/** A Grad-CAM overlay, with what its key tells about it. */
export interface GradCamJson {
  key: string;
  url: string;
  /** Image id inside the dataset. */
  image: string;
  trueClass: string;
  /** Null when the key does not name the prediction. */
  predictedClass: string | null;
}

/** `GET /api/runs/:id`. */
export interface RunDetailResponse {
  id: string;
  name: string;
  workflowId: string;
  status: RunStatus;
  config: Record<string, unknown>;
  configHash: string;
  seed: number;
  backend: string | null;
  datasetManifestKey: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  summary: SummaryJson | null;
  stageAttempts: StageAttemptJson[];
  folds: FoldJson[];
  epochMetrics: EpochJson[];
  artifacts: ArtifactJson[];
  gradCams: GradCamJson[];
}

/** One path whose value differs between compared runs. */
export interface ConfigDifferenceJson {
  path: string;
  /** One value per run, in run order; null where the run lacks the path. */
  values: unknown[];
}

/** `GET /api/compare`. */
export interface CompareResponse {
  runs: RunDetailResponse[];
  configDiff: ConfigDifferenceJson[];
}

/** One sweep of `GET /api/sweeps`. */
export interface SweepItemJson {
  id: string;
  name: string;
  workflowId: string;
  status: RunStatus;
  concurrency: number;
  /** Experiments in the sweep's plan. */
  planned: number;
  /** Experiments per status; planned ones not recorded yet are `pending`. */
  counts: Record<RunStatus | 'pending', number>;
  bestMeanAccuracy: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
}

/** `GET /api/sweeps`. */
export interface SweepListResponse {
  items: SweepItemJson[];
  total: number;
  page: number;
  pageSize: number;
}

/** `GET /api/sweeps/:id/compare`: the whole sweep, compared as `GET /api/compare` compares runs. */
export interface SweepCompareResponse extends CompareResponse {
  sweep: SweepItemJson & { spec: Record<string, unknown>; plan: SweepPlanEntry[] };
  /** True when the sweep has more experiments than the dashboard loads at once (the first ones are shown). */
  truncated: boolean;
}

/** How the run's images became network input, read from its sampling manifest. */
export interface PreprocessingJson {
  /** Side of the square network input, pixels. */
  imageSize: number;
  /** Shrink to this many pixels and back up before the network (a resolution shortcut removed), or null. */
  degradeToPixels: number | null;
  /** The crop policy recorded in the manifest (`centre-crop-to-square`). */
  crop: string;
  /** Resampling kernels of the resize and of the degrade round trip. */
  resizeKernel: string;
  degradeKernels: { down: string; up: string };
  /** Grey values 0–255 are divided by this before the network (the training code's normalisation). */
  scale: number;
  manifestKey: string;
}

/** `GET /api/runs/:id/screening`: what the browser needs to screen an image with the run's fold models. */
export interface ScreeningResponse {
  runId: string;
  classes: string[];
  preprocessing: PreprocessingJson;
  /** Each succeeded fold's model; `modelUrl` is the tfjs `model.json`, its weights resolve next to it. */
  models: { fold: number; modelUrl: string }[];
  /** How the folds are combined: the mean of their probabilities, as `detl predict` does. */
  ensemble: 'mean of probabilities';
  /**
   * The run's `evaluation.testTimeFlip`: each fold's probabilities are the mean of the softmax of
   * the image and of its left-right mirror, as in the run's own evaluation and `detl predict`.
   */
  testTimeFlip: boolean;
  /** The run's `gradCam.method`: how the page makes each fold's map, as the run's gallery and `detl predict` do. */
  gradCamMethod: GradCamMethod;
}

/** One overlay of `GET /api/runs/:id/gallery`: what the Grad-CAM stage recorded about it. */
export interface GalleryEntryJson {
  overlayUrl: string;
  /** The preprocessed input image (PNG, the network's size), as the model saw it. */
  imageUrl: string;
  imageId: string;
  trueClass: string;
  predictedClass: string;
  /** The explaining model's probability of the predicted class. */
  probability: number;
  /** The fold whose model (the one that held the image out) predicted and explained it. */
  fold: number;
}

/** `GET /api/runs/:id/gallery`; `recorded: false` for runs from before galleries were written (the overlays' keys are all there is). */
export interface GalleryResponse {
  recorded: boolean;
  classes: string[];
  /** Share of correctly classified lesion images whose map peaks inside the lesion; null without masks. */
  pointingGameRate: number | null;
  entries: GalleryEntryJson[];
}

/** Body of every error answer. */
export interface ErrorResponse {
  error: string;
  /** The offending query parameter, on 400. */
  field?: string;
}
