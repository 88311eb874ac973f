import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { initBackend } from './backend';
import { prepareForFineTuning } from './fine-tune';
import { readLabelledImages, type LabelledImages } from './labelled-images';
import { CHECKPOINT_FILES, loadModel, loadOptimizer, modelToFiles, saveModel } from './model-io';
import { buildModel } from './models';
import type { ScoringOptions } from './scoring';
import { createOptimizer, evaluateModel, outputClasses, snapshotWeights, trainModel, type BestWeights } from './train';
import type { TestEvaluation, TrainingJob, TrainingJobEpoch, TrainingJobResult } from './training-job';

/**
 * Evaluates a model on a test set: predictions, softmax probabilities, confusion matrix; with
 * `testTimeFlip` all of them follow the flip-averaged probabilities.
 */
export function evaluateOnTest(model: LayersModel, test: LabelledImages, batchSize = 32, options: ScoringOptions = {}): TestEvaluation {
  const classes = outputClasses(model);
  const { loss, accuracy, logits, flipAveraged } = evaluateModel(model, test, batchSize, options);
  const probabilities = flipAveraged
    ? Array.from({ length: test.count }, (_, i) => Array.from(flipAveraged.subarray(i * classes, (i + 1) * classes)))
    : tf.tidy(() => tf.softmax(tf.tensor2d(logits, [test.count, classes])).arraySync() as number[][]);
  const predictedClass = new Int32Array(test.count);
  const confusionMatrix = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  probabilities.forEach((row, i) => {
    let best = 0;
    row.forEach((p, c) => {
      if (p > (row[best] as number)) best = c;
    });
    predictedClass[i] = best;
    const truth = confusionMatrix[test.labels[i] as number];
    if (truth) truth[best] = (truth[best] as number) + 1;
  });
  return { labels: Array.from(test.labels), predictedClass, probabilities, confusionMatrix, accuracy, loss };
}

/** Written into every epoch checkpoint so a resume elsewhere (another worker, another scratch dir) keeps the best-so-far. */
interface TrainingState {
  epoch: number;
  /** Best validation epoch up to this one; its weights are this checkpoint's or those in `best/`. */
  best: { epoch: number; validationAccuracy: number } | null;
}

const STATE_FILE = 'training-state.json';

async function copyModelFiles(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const name of [CHECKPOINT_FILES.model, CHECKPOINT_FILES.weights]) await copyFile(join(from, name), join(to, name));
}

async function readState(dir: string): Promise<TrainingState | null> {
  try {
    return JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as TrainingState;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${join(dir, STATE_FILE)}: unreadable (${error instanceof Error ? error.message : String(error)})`);
  }
}

/**
 * Runs a training job in the current process: the body of the training child process, kept
 * importable so it can also run in-process (tests, debugging). Writes `epoch-<n>/` after every
 * epoch (model, optimizer state, metrics.json, training-state.json naming the best epoch so far,
 * plus that epoch's weights in `epoch-<n>/best/` when it is an earlier one, so a resume from this
 * directory alone still keeps the best-validation weights), then `best/` and `result.json`.
 */
export async function runTrainingJobInProcess(job: TrainingJob, onEpoch: (metrics: TrainingJobEpoch) => void | Promise<void> = () => undefined, signal?: AbortSignal): Promise<TrainingJobResult> {
  const started = performance.now();
  const backend = await initBackend(job.backend ?? 'auto', job.threads === undefined ? {} : { threads: job.threads });
  const train = await readLabelledImages(job.trainFile);
  const validation = job.validationFile ? await readLabelledImages(job.validationFile) : undefined;
  const test = job.kind === 'fine-tune' ? await readLabelledImages(job.testFile) : null;
  await mkdir(job.outputDir, { recursive: true });
  const bestDir = join(job.outputDir, 'best');
  // The best epoch's model files, kept apart so later epoch checkpoints can carry them.
  const bestSoFarDir = join(job.outputDir, 'best-so-far');
  let bestRecord: TrainingState['best'] = null;

  let model: LayersModel;
  let optimizer: tf.Optimizer | undefined;
  let previous: BestWeights | null = null;
  const startEpoch = job.resumeFrom?.epoch ?? 0;
  if (job.resumeFrom) {
    // The checkpoint already carries the fine-tuning surgery and the frozen layers' flags.
    const architecture = job.kind === 'pretrain' ? job.model.architecture : job.architecture;
    model = await loadModel(job.resumeFrom.modelDir, architecture ? { architecture } : {});
    optimizer = (await loadOptimizer(job.resumeFrom.modelDir)) ?? undefined;
    const state = await readState(job.resumeFrom.modelDir);
    if (state?.best) {
      const source = state.best.epoch === job.resumeFrom.epoch ? job.resumeFrom.modelDir : join(job.resumeFrom.modelDir, 'best');
      await copyModelFiles(source, bestSoFarDir);
      const bestModel = await loadModel(bestSoFarDir);
      previous = { ...state.best, weights: snapshotWeights(bestModel) };
      bestModel.dispose();
      bestRecord = state.best;
    }
  } else if (job.kind === 'pretrain') {
    model = buildModel({ ...job.model, seed: job.model.seed ?? job.seed });
  } else if (job.initialModelDir === null) {
    // The 4-class scratch baseline needs no pretraining at all.
    if (job.freeze !== 'scratch' || !job.model) {
      throw new Error(`fine-tune job without a pretrained model needs freeze 'scratch' and a model spec (freeze is '${job.freeze}')`);
    }
    model = buildModel({ ...job.model, numClasses: job.numClasses, seed: job.model.seed ?? job.seed });
  } else {
    const pretrained = await loadModel(job.initialModelDir, job.architecture ? { architecture: job.architecture } : {});
    model = prepareForFineTuning(pretrained, { numClasses: job.numClasses, freeze: job.freeze, seed: job.seed, ...(job.architecture ? { architecture: job.architecture } : {}) });
    pretrained.dispose();
  }

  const activeOptimizer = optimizer ?? createOptimizer(job.stage);
  // Epoch n's checkpoint is serialised before epoch n+1 changes the weights, then written to disk
  // and announced (onEpoch: the worker uploads it) while epoch n+1 computes: the disk writes and
  // best-so-far copies (tens of ms a checkpoint) leave the training's critical path. The writes
  // stay in epoch order, one chain, and a failed one fails the job at the next epoch end.
  let checkpointWrites: Promise<void> = Promise.resolve();
  const result = await trainModel({
    model,
    train,
    ...(validation ? { validation } : {}),
    stage: job.stage,
    seed: job.seed,
    startEpoch,
    optimizer: activeOptimizer,
    previousBest: previous,
    ...(signal ? { signal } : {}),
    onEpochEnd: async (metrics) => {
      const checkpointDir = join(job.outputDir, `epoch-${metrics.epoch}`);
      const files = await modelToFiles(model, { optimizer: activeOptimizer });
      // Same rule as trainModel: strictly better validation accuracy replaces the best.
      const improved = metrics.validationAccuracy !== null && (bestRecord === null || metrics.validationAccuracy > bestRecord.validationAccuracy);
      if (improved && metrics.validationAccuracy !== null) bestRecord = { epoch: metrics.epoch, validationAccuracy: metrics.validationAccuracy };
      const state: TrainingState = { epoch: metrics.epoch, best: bestRecord };
      const previousWrites = checkpointWrites;
      checkpointWrites = (async () => {
        await previousWrites;
        await mkdir(checkpointDir, { recursive: true });
        for (const [name, bytes] of files) await writeFile(join(checkpointDir, name), bytes);
        await writeFile(join(checkpointDir, 'metrics.json'), JSON.stringify(metrics));
        if (improved) await copyModelFiles(checkpointDir, bestSoFarDir);
        if (state.best && state.best.epoch !== metrics.epoch) await copyModelFiles(bestSoFarDir, join(checkpointDir, 'best'));
        await writeFile(join(checkpointDir, STATE_FILE), JSON.stringify(state));
        await onEpoch({ ...metrics, checkpointDir });
      })();
      // Handled: a failure is rethrown by the await below (next epoch end) or after training.
      checkpointWrites.catch(() => undefined);
      // The previous epoch's writes had a whole epoch to finish; one that failed stops training here.
      await previousWrites;
    },
  });
  // The last epoch's checkpoint is on disk and announced before the job reports its result.
  await checkpointWrites;
  const bestEpoch = result.best?.epoch ?? job.stage.epochs;
  const bestValidationAccuracy = result.best?.validationAccuracy ?? null;
  await saveModel(model, bestDir);
  const evaluation = test && job.kind === 'fine-tune' ? evaluateOnTest(model, test, job.stage.batchSize * 2, { testTimeFlip: job.testTimeFlip ?? false }) : null;
  result.optimizer.dispose();
  model.dispose();
  const outcome: TrainingJobResult = {
    kind: job.kind,
    backend,
    epochs: result.epochs,
    bestEpoch,
    bestValidationAccuracy,
    bestDir,
    test: evaluation,
    durationMs: performance.now() - started,
  };
  await writeFile(join(job.outputDir, 'result.json'), JSON.stringify({ ...outcome, test: evaluation ? { ...evaluation, predictedClass: Array.from(evaluation.predictedClass) } : null }));
  return outcome;
}
