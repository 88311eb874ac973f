import type { EpochMetrics, ExperimentConfig } from '@detl/config';
import type { ClassificationReport, ClassMetrics, ResultSummary } from './json-shapes';
import * as enums from './generated/prisma/enums';

/** Lifecycle of an experiment: `queued` → `running` → `succeeded` | `failed` | `cancelled`. */
export type ExperimentStatus = (typeof enums.ExperimentStatus)[keyof typeof enums.ExperimentStatus];
/** Every {@link ExperimentStatus}, in lifecycle order. */
export const EXPERIMENT_STATUSES = Object.values(enums.ExperimentStatus) as readonly ExperimentStatus[];
/** Statuses that end an experiment. */
export type FinishedExperimentStatus = Exclude<ExperimentStatus, 'queued' | 'running'>;

/** The five activities of the experiment workflow. */
export type StageName = (typeof enums.Stage)[keyof typeof enums.Stage];
/** Every {@link StageName}, in workflow order. */
export const STAGE_NAMES = Object.values(enums.Stage) as readonly StageName[];

/** State of one activity attempt or fold. */
export type AttemptStatus = (typeof enums.AttemptStatus)[keyof typeof enums.AttemptStatus];
/** Every {@link AttemptStatus}. */
export const ATTEMPT_STATUSES = Object.values(enums.AttemptStatus) as readonly AttemptStatus[];

/** What an S3 object is. */
export type ArtifactKind = (typeof enums.ArtifactKind)[keyof typeof enums.ArtifactKind];
/** Every {@link ArtifactKind}. */
export const ARTIFACT_KINDS = Object.values(enums.ArtifactKind) as readonly ArtifactKind[];

// The JSON column shapes are defined (schema and type) in the Node-free json-shapes.ts.
export type { ClassMetrics, ClassificationReport, ResultSummary };

/** One experiment row. */
export interface ExperimentRecord {
  id: string;
  name: string;
  /** Temporal workflow id; unique. */
  workflowId: string;
  status: ExperimentStatus;
  /** The validated configuration the run was started with. */
  config: ExperimentConfig;
  configHash: string;
  seed: number;
  /** tfjs backend the training used; null until known. */
  backend: string | null;
  /** S3 key of the sampling manifest; null until sampled. */
  datasetManifestKey: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  error: string | null;
  summary: ResultSummary | null;
}

/** One attempt of one activity. */
export interface StageAttemptRecord {
  id: string;
  experimentId: string;
  stage: StageName;
  /** Unit of work inside the stage, e.g. `sample`, `pretrain`, `fold-0`. */
  task: string;
  /** Temporal's attempt number, from 1. */
  attempt: number;
  status: AttemptStatus;
  startedAt: Date;
  finishedAt: Date | null;
  durationMs: number | null;
  error: string | null;
  workerIdentity: string;
  /** Free-form facts about the attempt (counts, keys, timings). */
  details: Record<string, unknown>;
}

/** Metrics of one epoch of one attempt of one task: the metric fields are {@link EpochMetrics}. */
export interface EpochMetricRecord extends EpochMetrics {
  id: string;
  experimentId: string;
  task: string;
  attempt: number;
  checkpointKey: string | null;
  recordedAt: Date;
}

/** One cross-validation fold. Result fields are null until the fold succeeded. */
export interface FoldRecord {
  id: string;
  experimentId: string;
  foldIndex: number;
  status: AttemptStatus;
  trainCount: number;
  testCount: number;
  accuracy: number | null;
  confusionMatrix: number[][] | null;
  report: ClassificationReport | null;
  modelKey: string | null;
  updatedAt: Date;
}

/** One S3 object a run wrote. */
export interface ArtifactRecord {
  id: string;
  experimentId: string;
  kind: ArtifactKind;
  key: string;
  /** Object size; a JavaScript number is exact up to 8 PiB. */
  sizeBytes: number;
  /** Hex SHA-256 of the object's bytes. */
  sha256: string;
  contentType: string;
  createdAt: Date;
}

/** An experiment with everything recorded about it, each list in a stable order. */
export interface ExperimentDetail extends ExperimentRecord {
  /** By start time, then task and attempt. */
  stageAttempts: StageAttemptRecord[];
  /** By fold index. */
  folds: FoldRecord[];
  /** By task, attempt and epoch. */
  epochMetrics: EpochMetricRecord[];
  /** By key. */
  artifacts: ArtifactRecord[];
}

/** One page of {@link TrackingStore.listExperiments}. */
export interface ExperimentPage {
  /** Newest first. */
  items: ExperimentRecord[];
  /** Pass as `cursor` to get the next page; null on the last page. */
  nextCursor: string | null;
}

/** Input of {@link TrackingStore.createExperiment}. */
export interface CreateExperimentInput {
  workflowId: string;
  name: string;
  config: ExperimentConfig;
  /** Hash of the canonical config, so identical configurations can be found. */
  configHash: string;
  seed: number;
  /** The sweep that started this experiment, and the experiment's index in its plan. */
  sweep?: { id: string; index: number };
}

/** Input of {@link TrackingStore.startStageAttempt}. */
export interface StartStageAttemptInput {
  experimentId: string;
  stage: StageName;
  task: string;
  attempt: number;
  workerIdentity: string;
}

/** Input of {@link TrackingStore.finishStageAttempt}. */
export interface FinishStageAttemptInput {
  experimentId: string;
  task: string;
  attempt: number;
  status: Exclude<AttemptStatus, 'running'>;
  error?: string | null;
  details?: Record<string, unknown>;
}

/**
 * Input of {@link TrackingStore.recordEpoch}: an epoch's {@link EpochMetrics} (the validation
 * fields may be left out when there was no validation set) and where it was recorded.
 */
export interface RecordEpochInput extends Omit<EpochMetrics, 'validationLoss' | 'validationAccuracy'>, Partial<Pick<EpochMetrics, 'validationLoss' | 'validationAccuracy'>> {
  experimentId: string;
  task: string;
  attempt: number;
  checkpointKey?: string | null;
}

/** Input of {@link TrackingStore.recordFold}; a `succeeded` fold must carry every result field. */
export interface RecordFoldInput {
  experimentId: string;
  foldIndex: number;
  status: AttemptStatus;
  trainCount: number;
  testCount: number;
  accuracy?: number | null;
  confusionMatrix?: number[][] | null;
  report?: ClassificationReport | null;
  modelKey?: string | null;
}

/** One artifact of {@link TrackingStore.recordArtifacts}. */
export interface ArtifactInput {
  kind: ArtifactKind;
  key: string;
  sizeBytes: number | bigint;
  sha256: string;
  contentType: string;
}

/** Input of {@link TrackingStore.listExperiments}. */
export interface ListExperimentsInput {
  /** Page size, 1–500. */
  limit: number;
  status?: ExperimentStatus;
  /** `nextCursor` of the previous page. */
  cursor?: string | null;
}

/**
 * The run history: everything the workflow's activities record and the CLI reads. Every write is
 * idempotent on its natural key, so a retried activity rewrites its rows instead of adding new ones.
 * Ids are UUIDs; a malformed one is rejected with a {@link TrackingError} before any query.
 */
export interface TrackingStore {
  /** Creates the experiment of a workflow, or returns the existing one when the workflow id is known. */
  createExperiment(input: CreateExperimentInput): Promise<ExperimentRecord>;
  /** Marks it running (the first start time is kept) and records the tfjs backend when given. */
  markExperimentRunning(id: string, options?: { backend?: string | null }): Promise<ExperimentRecord>;
  /** Ends it; the first finish time is kept when called again. */
  markExperimentFinished(
    id: string,
    outcome: { status: FinishedExperimentStatus; error?: string | null; summary?: ResultSummary | null },
  ): Promise<ExperimentRecord>;
  /** Records the S3 key of the sampling manifest. */
  setDatasetManifest(id: string, key: string): Promise<void>;
  /** Records the start of an activity attempt (re-running the same attempt restarts its row). */
  startStageAttempt(input: StartStageAttemptInput): Promise<StageAttemptRecord>;
  /** Records the end of an attempt started with {@link startStageAttempt}, with its duration. */
  finishStageAttempt(input: FinishStageAttemptInput): Promise<StageAttemptRecord>;
  /** Writes the metrics of one epoch, replacing any earlier write of the same epoch. */
  recordEpoch(input: RecordEpochInput): Promise<EpochMetricRecord>;
  /**
   * The newest epoch of a task that any attempt recorded with a checkpoint: since an epoch is
   * recorded only after its checkpoint is stored, this is where a retry resumes, even when the
   * attempt that wrote it died before its heartbeat reached Temporal. Null when there is none.
   */
  latestCheckpoint(experimentId: string, task: string): Promise<{ epoch: number; attempt: number; checkpointKey: string } | null>;
  /**
   * Marks the still-`running` attempts of a task that are older than `beforeAttempt` as failed with
   * `reason`: their worker died (SIGKILL, lost machine) without recording an end. Returns how many.
   */
  abandonStaleAttempts(input: { experimentId: string; task: string; beforeAttempt: number; reason: string }): Promise<number>;
  /** Writes one fold's state and results, replacing any earlier write of the same fold. */
  recordFold(input: RecordFoldInput): Promise<FoldRecord>;
  /** Writes artifacts in one transaction, replacing earlier writes of the same keys; returns how many. */
  recordArtifacts(experimentId: string, artifacts: readonly ArtifactInput[]): Promise<number>;
  /** Experiments, newest first. */
  listExperiments(input: ListExperimentsInput): Promise<ExperimentPage>;
  /** One experiment by id or workflow id, with all its rows; null when unknown. */
  getExperiment(idOrWorkflowId: string): Promise<ExperimentDetail | null>;
  /**
   * Experiments whose id starts with `prefix` (hex digits and dashes, at least 4 characters, any
   * case), newest first, at most `limit` (default 10): how a short id such as `5f73` is resolved.
   */
  findExperimentsByIdPrefix(prefix: string, limit?: number): Promise<ExperimentRecord[]>;
  /** How many experiments there are with each status (every status present, zero when none). */
  countExperimentsByStatus(): Promise<Record<ExperimentStatus, number>>;
  /** Closes the connection pool. */
  close(): Promise<void>;
}

/** Why a tracking call was refused (`invalid_row`: a stored JSON value does not match its schema). */
export type TrackingErrorCode = 'invalid_argument' | 'not_found' | 'conflict' | 'invalid_row';

/** Raised for invalid input, unknown rows, contradictory writes and malformed stored rows; the message names the value. */
export class TrackingError extends Error {
  override readonly name = 'TrackingError';
  constructor(
    readonly code: TrackingErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
