import { DATA_B_CLASSES, STAGES, foldOfTask, foldTask, parseExperimentConfig, taskOf } from '@detl/config';
import { epochCheckpointPrefix, foldModelPrefix, gradCamOverlayKey, modelJsonKey, type ObjectStore } from '@detl/storage';
import type { ResultSummary, SweepStore, TrackingStore } from '@detl/tracking';
import sharp from 'sharp';

/** Ids of the runs {@link seedRuns} recorded. */
export interface SeededRuns {
  /** small-vgg, succeeded, a failed-then-retried pretraining attempt, Grad-CAM overlays. */
  baseline: string;
  /** alexnet scratch baseline, succeeded. */
  scratch: string;
  /** Failed in fine-tuning with an error. */
  broken: string;
  /** Still running. */
  running: string;
  /** The sweep of baseline (index 0) and scratch (index 1). */
  sweep: string;
  /** baseline's Grad-CAM overlay keys, one per class in class order. */
  overlayKeys: string[];
}

/** A 64x64 greyscale gradient PNG standing in for a Grad-CAM overlay. */
async function overlayPng(shade: number): Promise<Uint8Array> {
  const size = 64;
  const pixels = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      const offset = (y * size + x) * 3;
      pixels[offset] = Math.min(255, x * 4);
      pixels[offset + 1] = shade;
      pixels[offset + 2] = Math.min(255, y * 4);
    }
  }
  return new Uint8Array(await sharp(pixels, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer());
}

function summaryOf(matrix: number[][], foldAccuracies: number[]): ResultSummary {
  const classes = [...DATA_B_CLASSES];
  const perClass = Object.fromEntries(
    classes.map((name, index) => {
      const row = matrix[index] ?? [];
      const support = row.reduce((sum, cell) => sum + cell, 0);
      const truePositive = row[index] ?? 0;
      const predicted = matrix.reduce((sum, other) => sum + (other[index] ?? 0), 0);
      const precision = predicted === 0 ? 0 : truePositive / predicted;
      const recall = support === 0 ? 0 : truePositive / support;
      const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
      return [name, { precision, recall, f1, support }];
    }),
  );
  const mean = foldAccuracies.reduce((sum, value) => sum + value, 0) / foldAccuracies.length;
  const std = Math.sqrt(foldAccuracies.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (foldAccuracies.length - 1));
  return {
    classes,
    foldAccuracies,
    meanAccuracy: mean,
    stdAccuracy: std,
    perClass,
    macroF1: Object.values(perClass).reduce((sum, metrics) => sum + metrics.f1, 0) / classes.length,
    confusionMatrix: matrix,
    accuracyInterval: { lower: mean - 0.05, upper: mean + 0.05, level: 0.95 },
    rocAuc: Object.fromEntries(classes.map((name, index) => [name, 0.7 + index * 0.05])),
    reportKey: 'report/summary.json',
    figureKeys: [],
  };
}

/** One fold's confusion matrix: `correct` on the diagonal of each class's 8 test images. */
function foldMatrix(fold: number): number[][] {
  return DATA_B_CLASSES.map((_, row) => DATA_B_CLASSES.map((__, column) => (row === column ? 5 + ((fold + row) % 3) : 0))).map((row, rowIndex) => {
    const rest = 8 - row.reduce((sum, cell) => sum + cell, 0);
    const next = (rowIndex + 1) % DATA_B_CLASSES.length;
    row[next] = (row[next] ?? 0) + rest;
    return row;
  });
}

async function recordTraining(tracking: TrackingStore, experimentId: string, task: string, attempt: number, epochs: number, ceiling: number): Promise<void> {
  const fold = foldOfTask(task);
  const target = fold === null ? { kind: 'pretrain' as const } : { kind: 'fold' as const, fold };
  for (let epoch = 0; epoch < epochs; epoch += 1) {
    const progress = (epoch + 1) / epochs;
    await tracking.recordEpoch({
      experimentId,
      task,
      attempt,
      epoch,
      trainLoss: 1.4 - progress * 0.9,
      trainAccuracy: 0.3 + progress * (ceiling - 0.2),
      validationLoss: 1.5 - progress * 0.7,
      validationAccuracy: 0.28 + progress * (ceiling - 0.3),
      learningRate: 1e-3,
      durationMs: 1200,
      imagesPerSecond: 48,
      checkpointKey: modelJsonKey(epochCheckpointPrefix(experimentId, target, epoch)),
    });
  }
}

/**
 * Records four runs through the {@link TrackingStore}, as the workflow's activities would, and puts
 * their Grad-CAM overlays into `store`: the dashboard's tests read exactly what a real run leaves.
 */
export async function seedRuns(tracking: TrackingStore, store: ObjectStore, sweeps: SweepStore): Promise<SeededRuns> {
  // baseline and scratch are the two experiments of a sweep over the fine-tuning regime.
  const sweep = '5f0c7a52-1111-4a2b-9c3d-0123456789ab';
  const plan = [
    { index: 0, workflowId: 'wf-baseline small-vgg', overrides: { 'model.architecture': 'small-vgg', 'fineTune.freeze': 'below-last-conv-block' } },
    { index: 1, workflowId: 'wf-scratch alexnet', overrides: { 'model.architecture': 'alexnet', 'fineTune.freeze': 'scratch' } },
  ];
  await sweeps.registerSweep({ id: sweep, name: 'regime sweep', workflowId: 'wf-regime-sweep', spec: { grid: { 'fineTune.freeze': ['below-last-conv-block', 'scratch'] } }, plan, concurrency: 2 });
  await sweeps.markSweepRunning(sweep);
  const sweepIndex: Record<string, number> = { 'baseline small-vgg': 0, 'scratch alexnet': 1 };
  const create = async (name: string, overrides: Record<string, unknown>) => {
    const index = sweepIndex[name];
    const input = { workflowId: `wf-${name}`, name, config: parseExperimentConfig(overrides), configHash: `hash-${name}`, seed: 42 };
    return (await tracking.createExperiment(index === undefined ? input : { ...input, sweep: { id: sweep, index } })).id;
  };

  const baseline = await create('baseline small-vgg', { pretrain: { epochs: 4 }, fineTune: { epochs: 3 } });
  await tracking.markExperimentRunning(baseline, { backend: 'wasm' });
  const [sample, pretrain] = [taskOf('sampleDataset'), taskOf('pretrainFromScratch')];
  await tracking.startStageAttempt({ experimentId: baseline, stage: STAGES.sampleDataset.trackingStage, task: sample, attempt: 1, workerIdentity: 'worker-1' });
  await tracking.finishStageAttempt({ experimentId: baseline, task: sample, attempt: 1, status: 'succeeded' });
  await tracking.startStageAttempt({ experimentId: baseline, stage: STAGES.pretrainFromScratch.trackingStage, task: pretrain, attempt: 1, workerIdentity: 'worker-1' });
  await recordTraining(tracking, baseline, pretrain, 1, 2, 0.8);
  await tracking.finishStageAttempt({ experimentId: baseline, task: pretrain, attempt: 1, status: 'failed', error: 'worker lost (SIGKILL) during epoch 2' });
  await tracking.startStageAttempt({ experimentId: baseline, stage: STAGES.pretrainFromScratch.trackingStage, task: pretrain, attempt: 2, workerIdentity: 'worker-2' });
  await recordTraining(tracking, baseline, pretrain, 2, 4, 0.85);
  await tracking.finishStageAttempt({ experimentId: baseline, task: pretrain, attempt: 2, status: 'succeeded' });
  const foldAccuracies: number[] = [];
  const summed = DATA_B_CLASSES.map(() => DATA_B_CLASSES.map(() => 0));
  for (let fold = 0; fold < 5; fold += 1) {
    const task = foldTask(fold);
    await tracking.startStageAttempt({ experimentId: baseline, stage: STAGES.fineTuneFold.trackingStage, task, attempt: 1, workerIdentity: 'worker-2' });
    await recordTraining(tracking, baseline, task, 1, 3, 0.6 + fold * 0.03);
    const matrix = foldMatrix(fold);
    matrix.forEach((row, r) => row.forEach((cell, c) => ((summed[r] as number[])[c] = (summed[r]?.[c] ?? 0) + cell)));
    const correct = matrix.reduce((sum, row, index) => sum + (row[index] ?? 0), 0);
    foldAccuracies.push(correct / 32);
    await tracking.recordFold({
      experimentId: baseline,
      foldIndex: fold,
      status: 'succeeded',
      trainCount: 128,
      testCount: 32,
      accuracy: correct / 32,
      confusionMatrix: matrix,
      report: summaryOf(matrix, [0.5, 0.6]).perClass,
      modelKey: foldModelPrefix(baseline, fold),
    });
    await tracking.finishStageAttempt({ experimentId: baseline, task, attempt: 1, status: 'succeeded' });
  }
  const overlays = [];
  for (const [index, className] of DATA_B_CLASSES.entries()) {
    const predicted = index === 1 ? 'normal' : className;
    const key = gradCamOverlayKey(baseline, { trueClass: className, imageId: `img-${index}`, predictedClass: predicted });
    overlays.push(await store.putObject(key, await overlayPng(60 * index), 'image/png'));
  }
  await tracking.recordArtifacts(baseline, overlays.map((object) => ({ ...object, kind: 'grad_cam' as const })));
  // A shard of the shared bucket that the run did not record: the API must refuse to serve it.
  await store.putObject('shards/not-an-artifact.u8', 'secret', 'application/octet-stream');
  await tracking.markExperimentFinished(baseline, { status: 'succeeded', summary: summaryOf(summed, foldAccuracies) });

  const scratch = await create('scratch alexnet', { model: { architecture: 'alexnet' }, fineTune: { freeze: 'scratch', optimizer: 'adam', learningRate: 0.001 } });
  await tracking.markExperimentRunning(scratch, { backend: 'tensorflow' });
  const scratchAccuracies = [0.5, 0.55, 0.45, 0.6, 0.52];
  for (let fold = 0; fold < 5; fold += 1) {
    await tracking.startStageAttempt({ experimentId: scratch, stage: STAGES.fineTuneFold.trackingStage, task: foldTask(fold), attempt: 1, workerIdentity: 'worker-3' });
    await recordTraining(tracking, scratch, foldTask(fold), 1, 3, 0.55);
    await tracking.finishStageAttempt({ experimentId: scratch, task: foldTask(fold), attempt: 1, status: 'succeeded' });
  }
  await tracking.markExperimentFinished(scratch, { status: 'succeeded', summary: summaryOf(foldMatrix(1), scratchAccuracies) });

  const broken = await create('broken folder run', { dataset: { source: { kind: 'folder', root: '/data/cxr' } } });
  await tracking.markExperimentRunning(broken, { backend: 'wasm' });
  await tracking.startStageAttempt({ experimentId: broken, stage: STAGES.sampleDataset.trackingStage, task: sample, attempt: 1, workerIdentity: 'worker-1' });
  await tracking.finishStageAttempt({ experimentId: broken, task: sample, attempt: 1, status: 'failed', error: 'no images under /data/cxr/covid' });
  await tracking.markExperimentFinished(broken, { status: 'failed', error: 'sampleDataset failed: no images under /data/cxr/covid' });

  const running = await create('running resnet', { model: { architecture: 'resnet50' } });
  await tracking.markExperimentRunning(running, { backend: 'wasm' });
  await tracking.startStageAttempt({ experimentId: running, stage: STAGES.pretrainFromScratch.trackingStage, task: pretrain, attempt: 1, workerIdentity: 'worker-4' });
  await recordTraining(tracking, running, pretrain, 1, 2, 0.7);

  await sweeps.finishSweep(sweep, { status: 'succeeded' });
  return { baseline, scratch, broken, running, sweep, overlayKeys: overlays.map((object) => object.key) };
}
