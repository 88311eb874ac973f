import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_B_CLASSES, STAGES, parseExperimentConfig } from '@detl/config';
import { loadManifest } from '@detl/data';
import { REPORT_FILES, foldModelPrefix, gradCamIndexKey, parseGradCamOverlayKey, readGradCamGallery, reportKey, type S3ObjectStore } from '@detl/storage';
import type { TrackingStore } from '@detl/tracking';
import { createActivities, type TrainingHeartbeat } from './activities';
import { parseFoldPredictions, type FoldPredictionsFile } from './fold-predictions';
import { startTestStores, type TestStores } from './test-support/test-services';

// Retry semantics of the training activities on real PostgreSQL and MinIO: a second attempt that
// receives the first attempt's last heartbeat continues from that checkpoint instead of epoch 1.
let services: TestStores;
let tracking: TrackingStore;
let store: S3ObjectStore;
let home: string;

beforeAll(async () => {
  services = await startTestStores('activities');
  ({ tracking, store, home } = services);
}, 180_000);

afterAll(async () => {
  await services?.stop();
});

const config = parseExperimentConfig({
  name: 'resume-test',
  seed: 11,
  dataset: { source: { kind: 'synthetic', imagesPerClass: 10, pretrainImagesPerClass: 20 }, imageSize: 32 },
  model: { architecture: 'small-vgg', widthMultiplier: 0.25 },
  pretrain: { epochs: 3, batchSize: 8 },
  runtime: { backend: 'wasm' },
});

/** Runs an activity in a mock activity context, keeping its declared result type. */
function runIn<A extends unknown[], R>(environment: MockActivityEnvironment, activity: (...args: A) => Promise<R>, ...args: A): Promise<R> {
  return environment.run(activity, ...args) as Promise<R>;
}

describe('training activities', () => {
  it('heartbeat every epoch, and a retry resumes from the newest stored checkpoint, even past a stale heartbeat', async () => {
    const activities = createActivities({ tracking, store, settings: { home } });
    const { experimentId } = await runIn(new MockActivityEnvironment(), activities.registerExperiment, { workflowId: `wf-${randomUUID()}`, config });
    const sample = await runIn(new MockActivityEnvironment(), activities.sampleDataset, { experimentId, config });

    const first = new MockActivityEnvironment({ attempt: 1 });
    const heartbeats: TrainingHeartbeat[] = [];
    first.on('heartbeat', (details: unknown) => {
      if (details && typeof details === 'object' && 'checkpointKey' in details) heartbeats.push(details as TrainingHeartbeat);
    });
    const result = await runIn(first, activities.pretrainFromScratch, { experimentId, config, manifestKey: sample.manifestKey });
    expect(result.epochsRun).toBe(3);
    expect(heartbeats.map((beat) => beat.epoch)).toEqual([1, 2, 3]);
    const second = heartbeats[1];
    if (!second) throw new Error('no heartbeat for epoch 2');
    expect(await store.headObject(`${second.checkpointKey}/model.json`)).not.toBeNull();

    // The worker "died" after storing epoch 3 but before finishing, and its last heartbeat to reach
    // Temporal (they are throttled) was epoch 2's: the run record knows better, nothing is retrained.
    const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: second });
    const resumed = await runIn(retry, activities.pretrainFromScratch, { experimentId, config, manifestKey: sample.manifestKey });
    expect(resumed.epochsRun).toBe(0);
    expect(resumed.bestEpoch).toBe(result.bestEpoch);
    expect(resumed.bestValidationAccuracy).toBe(result.bestValidationAccuracy);
    expect(await store.headObject(`${resumed.modelPrefix}/model.json`)).not.toBeNull();

    const experiment = await tracking.getExperiment(experimentId);
    const epochsOf = (attempt: number) => experiment?.epochMetrics.filter((m) => m.task === 'pretrain' && m.attempt === attempt).map((m) => m.epoch);
    expect(epochsOf(1)).toEqual([1, 2, 3]);
    expect(epochsOf(2)).toEqual([]);
    const attempts = experiment?.stageAttempts.filter((a) => a.task === 'pretrain').map((a) => [a.attempt, a.status]);
    expect(attempts).toEqual([
      [1, 'succeeded'],
      [2, 'succeeded'],
    ]);
  }, 300_000);

  it('fine-tunes the scratch baseline without any pretrained model', async () => {
    const activities = createActivities({ tracking, store, settings: { home } });
    const scratch = parseExperimentConfig({ ...config, name: 'scratch-fold', fineTune: { freeze: 'scratch', epochs: 1, batchSize: 8 } });
    const { experimentId } = await runIn(new MockActivityEnvironment(), activities.registerExperiment, { workflowId: `wf-${randomUUID()}`, config: scratch });
    const sample = await runIn(new MockActivityEnvironment(), activities.sampleDataset, { experimentId, config: scratch });
    const fold = await runIn(new MockActivityEnvironment(), activities.fineTuneFold, {
      experimentId,
      config: scratch,
      manifestKey: sample.manifestKey,
      pretrainedModelPrefix: null,
      fold: 0,
    });
    expect(fold.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(fold.testCount);
    expect(await store.headObject(`${fold.modelPrefix}/model.json`)).not.toBeNull();
    const experiment = await tracking.getExperiment(experimentId);
    expect(experiment?.folds.map((row) => row.foldIndex)).toEqual([0]);
  }, 300_000);

  it('aggregates the folds and explains held-out images with the fold that held them out, in a gallery that says what each overlay shows (with test-time flip)', async () => {
    const activities = createActivities({ tracking, store, settings: { home } });
    const twoFolds = parseExperimentConfig({
      ...config,
      name: 'grad-cam-gallery',
      dataset: { ...config.dataset, folds: 2 },
      fineTune: { freeze: 'scratch', epochs: 1, batchSize: 8 },
      // HiResCAM maps: the stage passes gradCam.method to every explainer and names it in the pointing game.
      gradCam: { imagesPerClass: 2, method: 'hires-cam' },
      // The folds score their held-out images flip-averaged; the gallery must agree with them.
      evaluation: { testTimeFlip: true },
    });
    const { experimentId } = await runIn(new MockActivityEnvironment(), activities.registerExperiment, { workflowId: `wf-${randomUUID()}`, config: twoFolds });
    const sample = await runIn(new MockActivityEnvironment(), activities.sampleDataset, { experimentId, config: twoFolds });
    const folds = [];
    for (const fold of [0, 1]) {
      const input = { experimentId, config: twoFolds, manifestKey: sample.manifestKey, pretrainedModelPrefix: null, fold };
      folds.push(await runIn(new MockActivityEnvironment(), activities.fineTuneFold, input));
    }
    expect(folds.map((fold) => fold.modelPrefix)).toEqual([foldModelPrefix(experimentId, 0), foldModelPrefix(experimentId, 1)]);

    const summary = await runIn(new MockActivityEnvironment(), activities.aggregateResults, { experimentId, config: twoFolds, folds });
    expect(summary.reportKey).toBe(reportKey(experimentId, REPORT_FILES.summary));
    expect(summary.figureKeys).toEqual([reportKey(experimentId, REPORT_FILES.confusionMatrix), reportKey(experimentId, REPORT_FILES.learningCurves)]);
    expect(summary.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(folds[0]!.testCount + folds[1]!.testCount);
    // Every held-out image is in one (class, source) cell; the synthetic set has one source.
    expect(summary.perClassSource?.cells.reduce((total, cell) => total + cell.total, 0)).toBe(folds[0]!.testCount + folds[1]!.testCount);
    expect(new Set(summary.perClassSource?.cells.map((cell) => cell.source))).toEqual(new Set(['synthetic']));

    const gradCams = await runIn(new MockActivityEnvironment(), activities.generateGradCams, { experimentId, config: twoFolds, manifestKey: sample.manifestKey, folds });
    expect(gradCams.galleryKey).toBe(gradCamIndexKey(experimentId));
    const gallery = await readGradCamGallery(store, experimentId);
    if (!gallery) throw new Error('no gallery written');
    expect(gallery.overlays.map((entry) => entry.overlayKey)).toEqual(gradCams.overlayKeys);
    expect(gallery.pointingGameRate).toBe(gradCams.pointingGameRate);
    // The detailed pointing game agrees with the rate (both null when nothing could be scored).
    expect(gradCams.pointingGame?.rate ?? null).toBe(gradCams.pointingGameRate);
    if (gradCams.pointingGame) expect(gradCams.pointingGame.method).toBe('hires-cam');
    // Two per class: every class has held-out images in the two folds.
    expect(gallery.overlays).toHaveLength(2 * DATA_B_CLASSES.length);
    const manifest = await loadManifest(store, sample.manifestKey);
    const recorded = new Map<number, FoldPredictionsFile>();
    for (const fold of folds) recorded.set(fold.fold, parseFoldPredictions(await store.getObject(fold.predictionsKey), fold.predictionsKey));
    for (const entry of gallery.overlays) {
      expect(parseGradCamOverlayKey(entry.overlayKey)).toMatchObject({ experimentId, trueClass: entry.trueClass, predictedClass: entry.predictedClass });
      // The image is one the explaining fold held out, found where the gallery says its pixels are.
      const item = manifest.items.find((candidate) => candidate.set === 'B' && candidate.imageId === entry.imageId);
      expect(item).toMatchObject({ fold: entry.fold, className: entry.trueClass, shardKey: entry.imageKey, index: entry.imageIndex });
      // The predicted class is the most probable of the four.
      expect(entry.probability).toBeGreaterThanOrEqual(1 / DATA_B_CLASSES.length);
      // …and the fold's own (flip-averaged) prediction and probability of that image.
      const predictions = recorded.get(entry.fold);
      const position = predictions?.imageIds.indexOf(entry.imageId) ?? -1;
      expect(DATA_B_CLASSES[predictions?.predicted[position] as number]).toBe(entry.predictedClass);
      expect(entry.probability).toBeCloseTo(predictions?.probabilities[position * DATA_B_CLASSES.length + (predictions.predicted[position] as number)] as number, 6);
      expect(entry.probability).toBeLessThanOrEqual(1);
      expect(await store.headObject(entry.overlayKey)).not.toBeNull();
    }

    const experiment = await tracking.getExperiment(experimentId);
    const kinds = new Map(experiment?.artifacts.map((artifact) => [artifact.key, artifact.kind]));
    for (const key of gradCams.overlayKeys) expect(kinds.get(key)).toBe('grad_cam');
    expect(kinds.get(gradCams.galleryKey)).toBe('report');
    // Each attempt row carries the stage table's tracking value and task name.
    const attempts = new Map(experiment?.stageAttempts.map((attempt) => [attempt.task, attempt.stage]));
    expect(Object.fromEntries(attempts)).toEqual({
      sample: STAGES.sampleDataset.trackingStage,
      'fold-0': STAGES.fineTuneFold.trackingStage,
      'fold-1': STAGES.fineTuneFold.trackingStage,
      aggregate: STAGES.aggregateResults.trackingStage,
      'grad-cam': STAGES.generateGradCams.trackingStage,
    });
  }, 300_000);
});
