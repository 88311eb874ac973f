import { randomUUID } from 'node:crypto';
import { mkdir, writeFile, readdir, copyFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServices, type TestServices } from '@detl/activities/testing';
import { DATA_B_CLASSES, parseExperimentConfig, type ExperimentConfigInput } from '@detl/config';
import { generateSyntheticDataset } from '@detl/data';
import { oneLineTemporalLog } from '@detl/services/testing';
import type { S3ObjectStore } from '@detl/storage';
import type { TrackingStore } from '@detl/tracking';
import { experimentWorkflow } from '@detl/workflows';
import { createDetlWorker } from './worker';

// The whole ExperimentWorkflow on real services: the Temporal dev server binary, PostgreSQL
// (DETL_TEST_DATABASE_URL, else embedded PGlite) and MinIO, with the real activities and tfjs.
// Warnings only, one line each (see oneLineTemporalLog).
Runtime.install({ logger: new DefaultLogger('WARN', oneLineTemporalLog) });
let services: TestServices;
let env: TestWorkflowEnvironment;
let tracking: TrackingStore;
let store: S3ObjectStore;
let home: string;

beforeAll(async () => {
  services = await startTestServices('e2e');
  ({ env, tracking, store, home } = services);
}, 240_000);

afterAll(async () => {
  await services?.stop();
});

async function runExperiment(configInput: ExperimentConfigInput) {
  const settings = services.settings();
  const taskQueue = settings.temporal.taskQueue;
  // No queues named: one worker polls the main and the training queue, as a plain `detl worker` does.
  const worker = await createDetlWorker({ settings, store, tracking, activitySlots: 2, connection: env.nativeConnection });
  expect(worker.queues).toEqual([
    { name: taskQueue, role: 'main' },
    { name: `${taskQueue}-training`, role: 'training' },
  ]);
  const workflowId = `e2e-${randomUUID()}`;
  const config = parseExperimentConfig(configInput);
  const outcome = await worker.runUntil(
    env.client.workflow
      .execute(experimentWorkflow, { taskQueue, workflowId, args: [{ config, trainingTaskQueue: settings.temporal.trainingTaskQueue }] })
      .then((result) => ({ result, error: undefined }), (error: unknown) => ({ result: undefined, error })),
  );
  return { workflowId, ...outcome };
}

const tinyRun: ExperimentConfigInput = {
  name: 'e2e-tiny',
  seed: 3,
  dataset: { source: { kind: 'synthetic', imagesPerClass: 10, pretrainImagesPerClass: 24 }, imageSize: 32 },
  model: { architecture: 'small-vgg', widthMultiplier: 0.5 },
  pretrain: { epochs: 2, batchSize: 8 },
  fineTune: { epochs: 2, batchSize: 8 },
  gradCam: { imagesPerClass: 1 },
  runtime: { backend: 'wasm' },
};

describe('ExperimentWorkflow end to end', () => {
  it('runs every stage on real Temporal, PostgreSQL and S3 and records all of it', async () => {
    const { workflowId, result, error } = await runExperiment(tinyRun);
    expect(error).toBeUndefined();
    expect(result).toBeDefined();
    if (!result) return;

    const experiment = await tracking.getExperiment(workflowId);
    expect(experiment?.status).toBe('succeeded');
    expect(experiment?.id).toBe(result.experimentId);
    const runs = await tracking.listExperiments({ limit: 100 });
    expect(runs.items.filter((row) => row.workflowId === workflowId)).toHaveLength(1);
    if (!experiment) return;

    expect(experiment.folds.map((fold) => fold.foldIndex).sort()).toEqual([0, 1, 2, 3, 4]);
    const summed = DATA_B_CLASSES.map((_, row) => DATA_B_CLASSES.map((__, column) => experiment.folds.reduce((total, fold) => total + ((fold.confusionMatrix as number[][])[row]?.[column] ?? 0), 0)));
    expect(result.summary.confusionMatrix).toEqual(summed);
    expect(experiment.summary?.confusionMatrix).toEqual(summed);
    const total = summed.flat().reduce((a, b) => a + b, 0);
    expect(total).toBe(experiment.folds.reduce((sum, fold) => sum + fold.testCount, 0));
    expect(total).toBe(40);

    const tasks = experiment.stageAttempts.filter((attempt) => attempt.status === 'succeeded').map((attempt) => attempt.task).sort();
    expect(tasks).toEqual(['aggregate', 'fold-0', 'fold-1', 'fold-2', 'fold-3', 'fold-4', 'grad-cam', 'pretrain', 'sample'].sort());
    expect(experiment.stageAttempts.every((attempt) => attempt.finishedAt !== null)).toBe(true);
    const sampling = experiment.stageAttempts.find((attempt) => attempt.task === 'sample');
    expect(sampling?.details).toMatchObject({ manifestKey: result.manifestKey, shardsWritten: expect.any(Number), shardsReused: expect.any(Number) });
    // 2 pretraining epochs + 5 folds x 2 fine-tuning epochs, each with its checkpoint.
    expect(experiment.epochMetrics).toHaveLength(12);
    expect(experiment.epochMetrics.every((metric) => metric.checkpointKey !== null)).toBe(true);

    const manifest = JSON.parse(new TextDecoder().decode(await store.getObject(result.manifestKey))) as { version: number };
    expect(manifest.version).toBeGreaterThan(0);
    for (const metric of experiment.epochMetrics) {
      expect(await store.headObject(`${metric.checkpointKey}/model.json`)).not.toBeNull();
    }
    expect(await store.headObject(`${result.pretrainedModelPrefix}/model.json`)).not.toBeNull();
    expect(result.gradCams.overlayKeys.length).toBeGreaterThanOrEqual(DATA_B_CLASSES.length);
    for (const key of result.gradCams.overlayKeys) {
      const metadata = await sharp(await store.getObject(key)).metadata();
      expect(metadata.format).toBe('png');
      expect(metadata.width).toBeGreaterThan(0);
    }
    const artifactKinds = new Set(experiment.artifacts.map((artifact) => artifact.kind));
    for (const kind of ['manifest', 'shard', 'checkpoint', 'model', 'grad_cam', 'report', 'figure']) expect(artifactKinds).toContain(kind);
    for (const artifact of experiment.artifacts) {
      expect((await store.headObject(artifact.key))?.sizeBytes).toBe(Number(artifact.sizeBytes));
    }
  }, 600_000);

  it('fails a run whose dataset has a class with fewer images than folds, naming the class, and records it as failed', async () => {
    const root = path.join(home, 'too-small');
    await generateSyntheticDataset({ root, seed: 5, imageSize: 64, dataB: { normal: 8, pneumonia: 8, other_disease: 8, covid: 3 }, dataA: { normal: 8, diseased: 8 } });
    const { workflowId, error } = await runExperiment({ ...tinyRun, dataset: { ...tinyRun.dataset, source: { kind: 'folder', root } } });
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const experiment = await tracking.getExperiment(workflowId);
    expect(experiment?.status).toBe('failed');
    expect(experiment?.error).toMatch(/covid/);
    expect(experiment?.stageAttempts.find((attempt) => attempt.task === 'sample')?.status).toBe('failed');
    // A data error is not retried: one attempt only.
    expect(experiment?.stageAttempts.filter((attempt) => attempt.task === 'sample')).toHaveLength(1);
    expect(experiment?.folds).toHaveLength(0);
  }, 300_000);

  it('fails a run with a corrupt image, naming the file', async () => {
    const source = path.join(home, 'corrupt-source');
    const root = path.join(home, 'corrupt');
    await generateSyntheticDataset({ root: source, seed: 6, imageSize: 64, dataB: { normal: 6, pneumonia: 6, other_disease: 6, covid: 6 }, dataA: { normal: 6, diseased: 6 } });
    await copyTree(source, root);
    const victim = (await readdir(path.join(root, 'pneumonia'))).filter((file) => file.endsWith('.png')).sort()[0] ?? 'missing.png';
    await writeFile(path.join(root, 'pneumonia', victim), Buffer.from('this is not a PNG file'));
    const { workflowId, error } = await runExperiment({ ...tinyRun, dataset: { ...tinyRun.dataset, source: { kind: 'folder', root } } });
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const experiment = await tracking.getExperiment(workflowId);
    expect(experiment?.status).toBe('failed');
    expect(experiment?.error).toContain(victim);
  }, 300_000);
});

async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (entry.isDirectory()) await copyTree(path.join(from, entry.name), path.join(to, entry.name));
    else await copyFile(path.join(from, entry.name), path.join(to, entry.name));
  }
}
