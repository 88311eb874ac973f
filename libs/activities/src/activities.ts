import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Context, activityInfo } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { DATA_A_CLASSES, DATA_B_CLASSES, type ExperimentConfig, type ServiceSettings } from '@detl/config';
import { loadImages, loadManifest, loadMasks, sampleDataset } from '@detl/data';
import {
  TrainingJobError,
  createGradCamExplainer,
  initBackend,
  loadModelFromStore,
  pointingGame,
  renderConfusionMatrixPng,
  renderGradCamOverlay,
  renderLearningCurvesPng,
  runTrainingJob,
  summarizeCrossValidation,
  trainingRuntimeOf,
  writeLabelledImages,
  type ClassificationReport as MlClassificationReport,
  type ModelSpec,
  type TrainingJob,
  type TrainingJobEpoch,
} from '@detl/ml';
import { downloadPrefix, uploadDirectory, type ObjectStore, type StoredObject } from '@detl/storage';
import type { ClassificationReport, EpochMetricRecord, StageName, TrackingStore } from '@detl/tracking';
import { NON_RETRYABLE_ERRORS } from './non-retryable';
import type {
  ExperimentRef,
  ExperimentSummary,
  FineTuneFoldInput,
  FinishExperimentInput,
  FoldResult,
  GradCamResult,
  PretrainResult,
  RegisterExperimentInput,
  SampleDatasetResult,
} from './activity-types';

/** What the activities need from the outside world. */
export interface ActivityDependencies {
  tracking: TrackingStore;
  store: ObjectStore;
  settings: Pick<ServiceSettings, 'home'>;
  /**
   * Threads each training child may use when the config says `runtime.threads: 'auto'`: the
   * worker's cores divided by the trainings it runs at once. Default: every core.
   */
  trainingThreads?: number;
}

/** Progress a training activity heartbeats, and resumes from after a retry. */
export interface TrainingHeartbeat {
  epoch: number;
  checkpointKey: string;
}

/** Why Temporal aborted an attempt, as the prefix of its recorded error. */
function abortReason(details: Context['cancellationDetails']): string {
  if (details?.timedOut || details?.notFound) return 'timed out';
  if (details?.workerShutdown) return 'worker shutting down';
  if (details?.paused) return 'paused';
  if (details?.reset) return 'reset';
  return 'cancelled';
}

/** How often a running training activity heartbeats between epochs. */
const HEARTBEAT_INTERVAL_MS = 10_000;

/**
 * Builds the DETL activities around their dependencies (the samples-typescript factory pattern),
 * so tests and workers hand in real stores and nothing is reached through globals.
 */
export function createActivities({ tracking, store, settings, trainingThreads }: ActivityDependencies) {
  const scratchRoot = path.join(settings.home, 'scratch');
  const threadsFor = (config: ExperimentConfig): number | undefined => (config.runtime.threads === 'auto' ? trainingThreads : config.runtime.threads);

  /** Records one attempt of a stage around `run`, whatever its outcome. */
  async function tracked<T>(experimentId: string, stage: StageName, task: string, run: (attempt: number) => Promise<T>): Promise<T> {
    const info = activityInfo();
    const attempt = info.attempt;
    if (attempt > 1) {
      await tracking.abandonStaleAttempts({
        experimentId,
        task,
        beforeAttempt: attempt,
        reason: `worker lost: the attempt never recorded an end (process killed or machine gone) and Temporal started attempt ${attempt}`,
      });
    }
    await tracking.startStageAttempt({ experimentId, stage, task, attempt, workerIdentity: workerIdentity() });
    try {
      const result = await run(attempt);
      // The attempt's own result (counts, shard reuse, best epoch, …) goes into the run record, so
      // the history shows what each attempt produced, including cache hits.
      const details = typeof result === 'object' && result !== null ? (result as Record<string, unknown>) : undefined;
      await tracking.finishStageAttempt({ experimentId, task, attempt, status: 'succeeded', details });
      return result;
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      // A cancelled run's attempts say so, rather than showing the abort they died of as a failure;
      // an attempt Temporal gave up on (heartbeat timeout, e.g. across a server restart) says that instead.
      const context = Context.current();
      const message = context.cancellationSignal.aborted ? `${abortReason(context.cancellationDetails)}: ${text}` : text;
      await tracking.finishStageAttempt({ experimentId, task, attempt, status: 'failed', error: message });
      throw surfaceChildError(error);
    }
  }

  /** A clean local folder for one attempt of one task, removed afterwards by the caller. */
  async function scratchDir(experimentId: string, task: string, attempt: number): Promise<string> {
    const dir = path.join(scratchRoot, experimentId, task, `attempt-${attempt}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /**
   * Runs one training job in a child process, uploading each epoch's checkpoint, recording its
   * metrics and heartbeating `{ epoch, checkpointKey }`; on a retry it resumes from the last
   * heartbeated checkpoint instead of starting over.
   */
  async function trainWithCheckpoints(options: {
    experimentId: string;
    task: string;
    attempt: number;
    dir: string;
    checkpointPrefix: string;
    job: DistributiveOmit<TrainingJob, 'outputDir' | 'resumeFrom'>;
  }) {
    const { experimentId, task, attempt, dir, checkpointPrefix } = options;
    const context = Context.current();
    // The SDK throttles heartbeats, so a worker killed mid-run may never have sent its last one;
    // the run record's epoch rows are written after each checkpoint upload and are the better source.
    const heartbeat = context.info.heartbeatDetails as TrainingHeartbeat | undefined;
    const recorded = attempt > 1 ? await tracking.latestCheckpoint(experimentId, task) : null;
    const sources = [
      ...(heartbeat?.checkpointKey ? [{ epoch: heartbeat.epoch, checkpointKey: heartbeat.checkpointKey, source: 'heartbeat' }] : []),
      ...(recorded ? [{ epoch: recorded.epoch, checkpointKey: recorded.checkpointKey, source: 'run record' }] : []),
    ];
    const previous = sources.reduce<(typeof sources)[number] | undefined>((best, candidate) => (!best || candidate.epoch > best.epoch ? candidate : best), undefined);
    let resumeFrom: { epoch: number; modelDir: string } | undefined;
    if (previous) {
      const modelDir = await downloadPrefix(store, previous.checkpointKey, path.join(dir, 'resume'));
      resumeFrom = { epoch: previous.epoch, modelDir };
      context.log.info('resuming training from checkpoint', { task, epoch: previous.epoch, checkpoint: previous.checkpointKey, source: previous.source });
    }
    let lastHeartbeat: TrainingHeartbeat | undefined = previous && { epoch: previous.epoch, checkpointKey: previous.checkpointKey };
    // Training runs in a child process, so this loop stays free to prove the worker is alive.
    const ticker = setInterval(() => context.heartbeat(lastHeartbeat), HEARTBEAT_INTERVAL_MS);
    try {
      return await runTrainingJob(
        { ...options.job, outputDir: path.join(dir, 'output'), resumeFrom } as TrainingJob,
        {
          signal: context.cancellationSignal,
          onEpoch: async (metrics: TrainingJobEpoch) => {
            const checkpointKey = `${checkpointPrefix}/epoch-${metrics.epoch}`;
            const stored = await uploadDirectory(store, metrics.checkpointDir, checkpointKey);
            await tracking.recordArtifacts(experimentId, stored.map((object) => ({ ...object, kind: 'checkpoint' as const })));
            await tracking.recordEpoch({
              experimentId,
              task,
              attempt,
              epoch: metrics.epoch,
              trainLoss: metrics.trainLoss,
              trainAccuracy: metrics.trainAccuracy,
              validationLoss: metrics.validationLoss,
              validationAccuracy: metrics.validationAccuracy,
              learningRate: metrics.learningRate,
              durationMs: metrics.durationMs,
              imagesPerSecond: metrics.imagesPerSecond,
              checkpointKey,
            });
            lastHeartbeat = { epoch: metrics.epoch, checkpointKey };
            context.heartbeat(lastHeartbeat);
          },
        },
      );
    } finally {
      clearInterval(ticker);
    }
  }

  return {
    /** Creates (or finds, on retry) the experiment's run record. */
    async registerExperiment({ workflowId, config, sweep }: RegisterExperimentInput): Promise<ExperimentRef> {
      const experiment = await tracking.createExperiment({
        workflowId,
        name: config.name,
        config,
        configHash: hashConfig(config),
        seed: config.seed,
        sweep,
      });
      return { experimentId: experiment.id };
    },

    /** Marks the run as started. */
    async markExperimentRunning({ experimentId }: ExperimentRef): Promise<void> {
      await tracking.markExperimentRunning(experimentId, {});
    },

    /** Writes the run's final status, error and summary. */
    async finishExperiment({ experimentId, status, error, summary }: FinishExperimentInput): Promise<void> {
      await tracking.markExperimentFinished(experimentId, { status, error, summary });
    },

    /** Builds Data-A and Data-B with patient-grouped folds; writes shards and the manifest to S3. */
    async sampleDataset({ experimentId, config }: ExperimentRef & { config: ExperimentConfig }): Promise<SampleDatasetResult> {
      return tracked(experimentId, 'sample_dataset', 'sample', async () => {
        const context = Context.current();
        const result = await sampleDataset({
          config,
          store,
          workDir: path.join(settings.home, 'datasets'),
          onProgress: (progress) => context.heartbeat(progress),
        });
        // Reused shards belong to this run as much as new ones, so the record lists all the manifest names.
        const manifestSize = (await store.headObject(result.manifestKey))?.sizeBytes ?? 0;
        const manifestHash = result.manifestKey.slice('manifests/'.length).replace(/\.json$/, '');
        await tracking.recordArtifacts(experimentId, [
          { kind: 'manifest', key: result.manifestKey, sizeBytes: manifestSize, sha256: manifestHash, contentType: 'application/json' },
          ...result.manifest.shards.map((shard) => ({ kind: 'shard' as const, key: shard.key, sizeBytes: shard.sizeBytes, sha256: shard.sha256, contentType: 'application/octet-stream' })),
        ]);
        await tracking.setDatasetManifest(experimentId, result.manifestKey);
        return {
          manifestKey: result.manifestKey,
          counts: result.counts,
          shardsWritten: result.shardsWritten,
          shardsReused: result.shardsReused,
          warnings: result.warnings,
        };
      });
    },

    /** Trains the network from scratch on Data-A (normal vs diseased), keeping the best-validation weights. */
    async pretrainFromScratch({ experimentId, config, manifestKey }: ExperimentRef & { config: ExperimentConfig; manifestKey: string }): Promise<PretrainResult> {
      return tracked(experimentId, 'pretrain', 'pretrain', async (attempt) => {
        const dir = await scratchDir(experimentId, 'pretrain', attempt);
        try {
          const manifest = await loadManifest(store, manifestKey);
          const trainFile = path.join(dir, 'train.bin');
          const validationFile = path.join(dir, 'validation.bin');
          await writeLabelledImages(trainFile, await loadImages(store, manifest, { set: 'A', split: 'train' }));
          await writeLabelledImages(validationFile, await loadImages(store, manifest, { set: 'A', split: 'validation' }));
          const prefix = `experiments/${experimentId}/pretrain`;
          const result = await trainWithCheckpoints({
            experimentId,
            task: 'pretrain',
            attempt,
            dir,
            checkpointPrefix: prefix,
            job: {
              kind: 'pretrain',
              backend: config.runtime.backend,
              threads: threadsFor(config),
              model: modelSpecOf(config, DATA_A_CLASSES.length),
              stage: config.pretrain,
              seed: config.seed,
              trainFile,
              validationFile,
            },
          });
          const stored = await uploadDirectory(store, result.bestDir, `${prefix}/best`);
          await tracking.recordArtifacts(experimentId, stored.map((object) => ({ ...object, kind: 'model' as const })));
          await tracking.markExperimentRunning(experimentId, { backend: result.backend.backend });
          return {
            modelPrefix: `${prefix}/best`,
            bestEpoch: result.bestEpoch,
            bestValidationAccuracy: result.bestValidationAccuracy,
            epochsRun: result.epochs.length,
            backend: result.backend.backend,
            runtime: trainingRuntimeOf(result.backend),
          };
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    },

    /**
     * DETL fine-tuning of one fold: the pretrained base with a new 4-class head, frozen below the
     * last conv block (per config), trained on the other folds and evaluated on this one.
     */
    async fineTuneFold(input: FineTuneFoldInput): Promise<FoldResult> {
      const { experimentId, config, manifestKey, pretrainedModelPrefix, fold } = input;
      const task = `fold-${fold}`;
      return tracked(experimentId, 'fine_tune_fold', task, async (attempt) => {
        const dir = await scratchDir(experimentId, task, attempt);
        try {
          const manifest = await loadManifest(store, manifestKey);
          const trainFolds = Array.from({ length: config.dataset.folds }, (_, index) => index).filter((index) => index !== fold);
          const train = await loadImages(store, manifest, { set: 'B', folds: trainFolds });
          const test = await loadImages(store, manifest, { set: 'B', folds: [fold] });
          const trainFile = path.join(dir, 'train.bin');
          const testFile = path.join(dir, 'test.bin');
          await writeLabelledImages(trainFile, train);
          await writeLabelledImages(testFile, test);
          const initialModelDir = pretrainedModelPrefix === null ? null : await downloadPrefix(store, pretrainedModelPrefix, path.join(dir, 'pretrained'));
          const prefix = `experiments/${experimentId}/folds/${fold}`;
          const result = await trainWithCheckpoints({
            experimentId,
            task,
            attempt,
            dir,
            checkpointPrefix: prefix,
            job: {
              kind: 'fine-tune',
              backend: config.runtime.backend,
              threads: threadsFor(config),
              architecture: config.model.architecture,
              model: modelSpecOf(config, DATA_B_CLASSES.length),
              numClasses: DATA_B_CLASSES.length,
              stage: config.fineTune,
              freeze: config.fineTune.freeze,
              seed: config.seed + fold + 1,
              trainFile,
              testFile,
              initialModelDir,
            },
          });
          if (!result.test) throw new Error(`${task}: the training job returned no test evaluation`);
          const { confusionMatrix, predictedClass, probabilities } = result.test;
          const modelObjects = await uploadDirectory(store, result.bestDir, `${prefix}/final`);
          const predictions: FoldPredictionsFile = {
            fold,
            classNames: [...DATA_B_CLASSES],
            imageIds: test.imageIds,
            actual: Array.from(test.labels),
            predicted: Array.from(predictedClass),
            probabilities: probabilities.flat(),
          };
          const predictionsObject = await store.putObject(`${prefix}/predictions.json`, JSON.stringify(predictions), 'application/json');
          await tracking.recordArtifacts(experimentId, [
            ...modelObjects.map((object) => ({ ...object, kind: 'model' as const })),
            { ...predictionsObject, kind: 'report' as const },
          ]);
          const foldResult: FoldResult = {
            fold,
            accuracy: result.test.accuracy,
            confusionMatrix,
            trainCount: train.count,
            testCount: test.count,
            modelPrefix: `${prefix}/final`,
            predictionsKey: predictionsObject.key,
            runtime: trainingRuntimeOf(result.backend),
          };
          await tracking.recordFold({
            experimentId,
            foldIndex: fold,
            status: 'succeeded',
            trainCount: train.count,
            testCount: test.count,
            accuracy: result.test.accuracy,
            confusionMatrix,
            report: toTrackedReport(summarizeCrossValidation([{ actual: predictions.actual, predicted: predictions.predicted }], predictions.classNames, { seed: 1, iterations: 1 }).report),
            modelKey: foldResult.modelPrefix,
          });
          return foldResult;
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    },

    /** Sums the fold confusion matrices and reports per-fold and mean ± std accuracy, per-class metrics and figures. */
    async aggregateResults({ experimentId, folds }: ExperimentRef & { config: ExperimentConfig; folds: FoldResult[] }): Promise<ExperimentSummary> {
      return tracked(experimentId, 'aggregate_results', 'aggregate', async () => {
        const classNames = [...DATA_B_CLASSES];
        const ordered = [...folds].sort((a, b) => a.fold - b.fold);
        const predictions: FoldPredictionsFile[] = [];
        for (const fold of ordered) {
          predictions.push(JSON.parse(new TextDecoder().decode(await store.getObject(fold.predictionsKey))) as FoldPredictionsFile);
        }
        const cv = summarizeCrossValidation(predictions, classNames, { seed: 7, iterations: 2000, level: 0.95 });
        const prefix = `experiments/${experimentId}/report`;
        const figures: StoredObject[] = [];
        figures.push(await store.putObject(`${prefix}/confusion-matrix.png`, await renderConfusionMatrixPng(cv.confusionMatrix, classNames), 'image/png'));
        const history = await tracking.getExperiment(experimentId);
        const curves = learningCurveSeries(history?.epochMetrics ?? []);
        if (curves.length > 0) {
          const png = await renderLearningCurvesPng(curves, { title: 'Accuracy per epoch (validation for pretraining, training for folds)', yLabel: 'accuracy', yMin: 0, yMax: 1 });
          figures.push(await store.putObject(`${prefix}/learning-curves.png`, png, 'image/png'));
        }
        const summaryWithoutKey = {
          classes: classNames,
          foldAccuracies: cv.foldAccuracies,
          meanAccuracy: cv.accuracy.mean,
          stdAccuracy: cv.accuracy.std,
          confusionMatrix: cv.confusionMatrix,
          perClass: toTrackedReport(cv.report),
          macroF1: cv.report.macroF1,
          accuracyInterval: { lower: cv.accuracyInterval.lower, upper: cv.accuracyInterval.upper, level: cv.accuracyInterval.level },
          rocAuc: Object.fromEntries(classNames.map((name, index) => [name, finiteOrNull(cv.rocAuc?.perClass[index])])),
          figureKeys: figures.map((figure) => figure.key),
        };
        const reportObject = await store.putObject(
          `${prefix}/summary.json`,
          JSON.stringify({ ...summaryWithoutKey, foldConfusionMatrices: cv.foldConfusionMatrices, macroRocAuc: finiteOrNull(cv.rocAuc?.macro) }, null, 2),
          'application/json',
        );
        await tracking.recordArtifacts(experimentId, [
          ...figures.map((figure) => ({ ...figure, kind: 'figure' as const })),
          { ...reportObject, kind: 'report' as const },
        ]);
        return { ...summaryWithoutKey, reportKey: reportObject.key };
      });
    },

    /**
     * Grad-CAM overlays for a few held-out images per class, each explained by the model that did
     * not see it in training; scores localisation against lesion masks when the dataset has them.
     */
    async generateGradCams({ experimentId, config, manifestKey, folds }: ExperimentRef & { config: ExperimentConfig; manifestKey: string; folds: FoldResult[] }): Promise<GradCamResult> {
      return tracked(experimentId, 'generate_grad_cams', 'grad-cam', async () => {
        const context = Context.current();
        await initBackend(config.runtime.backend);
        const manifest = await loadManifest(store, manifestKey);
        const wanted = config.gradCam.imagesPerClass;
        const overlayKeys: string[] = [];
        const stored: StoredObject[] = [];
        const taken = new Map<number, number>();
        let hits = 0;
        let scored = 0;
        for (const fold of [...folds].sort((a, b) => a.fold - b.fold)) {
          const test = await loadImages(store, manifest, { set: 'B', folds: [fold.fold] });
          const masks = await loadMasks(store, manifest, { set: 'B', folds: [fold.fold] });
          const maskOf = maskLookup(masks);
          const model = await loadModelFromStore(store, fold.modelPrefix);
          const explainer = createGradCamExplainer(model);
          try {
            const pixelsPerImage = test.size * test.size;
            for (let index = 0; index < test.count; index += 1) {
              const label = test.labels[index] ?? -1;
              const imageId = test.imageIds[index] ?? `image-${index}`;
              const mask = maskOf(imageId);
              const needOverlay = (taken.get(label) ?? 0) < wanted;
              if (!needOverlay && !mask) continue;
              const pixels = test.pixels.subarray(index * pixelsPerImage, (index + 1) * pixelsPerImage);
              const explanation = explainer.explain(pixels, test.size);
              if (mask && explanation.classIndex === label && label !== 0) {
                scored += 1;
                if (pointingGame(explanation.heatmap, mask, test.size).hit) hits += 1;
              }
              if (needOverlay) {
                const className = DATA_B_CLASSES[label] ?? 'unknown';
                const predicted = DATA_B_CLASSES[explanation.classIndex] ?? 'unknown';
                const key = `experiments/${experimentId}/gradcam/${className}/${safeKeySegment(imageId)}-pred-${predicted}.png`;
                const png = await renderGradCamOverlay(pixels, test.size, explanation.heatmap, { alpha: 0.45 });
                const object = await store.putObject(key, png, 'image/png');
                stored.push(object);
                overlayKeys.push(key);
                taken.set(label, (taken.get(label) ?? 0) + 1);
              }
              context.heartbeat({ fold: fold.fold, index });
            }
          } finally {
            explainer.dispose();
            model.dispose();
          }
        }
        await tracking.recordArtifacts(experimentId, stored.map((object) => ({ ...object, kind: 'grad_cam' as const })));
        return { overlayKeys, pointingGameRate: scored > 0 ? hits / scored : null };
      });
    },
  };
}

/** The activity functions, as workflows see them through `proxyActivities`. */
export type DetlActivities = ReturnType<typeof createActivities>;

/** Stable hash of a configuration, so identical runs can be found in the history. */
export function hashConfig(config: ExperimentConfig): string {
  return createHash('sha256').update(stableStringify(config)).digest('hex');
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, child]) => `${JSON.stringify(key)}:${stableStringify(child)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The network the configuration asks for, with a given number of output classes. */
function modelSpecOf(config: ExperimentConfig, numClasses: number): ModelSpec {
  return {
    architecture: config.model.architecture,
    widthMultiplier: config.model.widthMultiplier,
    imageSize: config.dataset.imageSize,
    channels: 1,
    numClasses,
    seed: config.seed,
  };
}

/** Held-out predictions of one fold, as stored next to its model. */
interface FoldPredictionsFile {
  fold: number;
  classNames: string[];
  imageIds: string[];
  actual: number[];
  predicted: number[];
  /** Row-major images × classes softmax probabilities. */
  probabilities: number[];
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** One accuracy curve per training task, from each task's newest attempt. */
function learningCurveSeries(metrics: readonly EpochMetricRecord[]) {
  const newestAttempt = new Map<string, number>();
  for (const metric of metrics) newestAttempt.set(metric.task, Math.max(newestAttempt.get(metric.task) ?? 0, metric.attempt));
  const byTask = new Map<string, { epoch: number; value: number }[]>();
  for (const metric of metrics) {
    if (metric.attempt !== newestAttempt.get(metric.task)) continue;
    const series = byTask.get(metric.task) ?? [];
    series.push({ epoch: metric.epoch, value: metric.validationAccuracy ?? metric.trainAccuracy });
    byTask.set(metric.task, series);
  }
  return [...byTask.entries()].map(([name, points]) => ({ name, points: points.sort((a, b) => a.epoch - b.epoch) }));
}

function toTrackedReport(report: MlClassificationReport): ClassificationReport {
  return Object.fromEntries(report.perClass.map(({ className, precision, recall, f1, support }) => [className, { precision, recall, f1, support }]));
}

function finiteOrNull(value: number | undefined): number | null {
  return value === undefined || !Number.isFinite(value) ? null : value;
}

function maskLookup(masks: { masks: Uint8Array; imageIds: string[]; size: number }): (imageId: string) => Uint8Array | null {
  const area = masks.size * masks.size;
  const positions = new Map(masks.imageIds.map((imageId, index) => [imageId, index]));
  return (imageId) => {
    const index = positions.get(imageId);
    return index === undefined ? null : masks.masks.subarray(index * area, (index + 1) * area);
  };
}

/**
 * Errors no retry can fix (bad data, an impossible model spec, a checkpoint of another
 * architecture) leave the activity as non-retryable failures typed by their name, including those
 * raised inside the training child, which arrive wrapped in a TrainingJobError.
 */
function surfaceChildError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const type = error instanceof TrainingJobError && error.childErrorName ? error.childErrorName : error.name;
  if (!NON_RETRYABLE_ERRORS.includes(type)) return error;
  return ApplicationFailure.create({ type, message: error.message, nonRetryable: true, cause: error });
}

function safeKeySegment(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 120);
}

function workerIdentity(): string {
  return `${process.pid}@${process.env.HOSTNAME ?? 'localhost'}`;
}
