import { randomUUID } from 'node:crypto';
import { parseExperimentConfig } from '@detl/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRunHistoryQueries, type RunHistoryQueries } from './run-history-queries';
import { createSweepStore, type SweepStore } from './sweep-store';
import { createTestDatabase, type TestDatabase } from './test-database';
import { testResultSummary } from './test-result-summary';
import { createTrackingStore } from './tracking-store';
import type { ResultSummary, TrackingStore } from './tracking-types';

// Runs written through the TrackingStore and SweepStore the activities use, read back through the
// dashboard's queries: the one-statement detail must equal the store's own (Prisma include) read,
// the generated sort columns must follow the writes, and sweeps filter, list and load as recorded.

let database: TestDatabase;
let tracking: TrackingStore;
let sweeps: SweepStore;
let queries: RunHistoryQueries;
const ids: Record<'low' | 'high' | 'running' | 'lone', string> = { low: '', high: '', running: '', lone: '' };
const sweepId = randomUUID();

function summary(meanAccuracy: number): ResultSummary {
  return testResultSummary({ foldAccuracies: [meanAccuracy - 0.01, meanAccuracy + 0.01], meanAccuracy, stdAccuracy: 0.014 });
}

beforeAll(async () => {
  database = await createTestDatabase();
  tracking = createTrackingStore(database.url);
  sweeps = createSweepStore(database.url);
  queries = createRunHistoryQueries(database.url);
  const plan = [0, 1, 2].map((index) => ({ index, workflowId: `sweep-wf-${index}`, overrides: { 'fineTune.learningRate': 10 ** -(index + 2) } }));
  await sweeps.registerSweep({ id: sweepId, name: 'lr-sweep', workflowId: `sweep-${sweepId}`, spec: { base: {} }, plan, concurrency: 2 });
  const make = async (name: string, architecture: string, index: number | null) => {
    const config = parseExperimentConfig({ model: { architecture } });
    const experiment = await tracking.createExperiment({
      workflowId: `wf-${name}-${randomUUID().slice(0, 6)}`,
      name,
      config,
      configHash: name,
      seed: 1,
      ...(index === null ? {} : { sweep: { id: sweepId, index } }),
    });
    await tracking.markExperimentRunning(experiment.id, { backend: 'wasm' });
    return experiment.id;
  };
  ids.low = await make('sweep-low', 'small-vgg', 0);
  ids.high = await make('sweep-high', 'alexnet', 1);
  ids.running = await make('sweep-running', 'small-vgg', 2);
  ids.lone = await make('lone', 'vgg16', null);
  // A retried pretraining, epochs of two tasks, a fold and artifacts for the detail comparison.
  for (const attempt of [1, 2]) {
    await tracking.startStageAttempt({ experimentId: ids.high, stage: 'pretrain', task: 'pretrain', attempt, workerIdentity: 'w1' });
    await tracking.finishStageAttempt({ experimentId: ids.high, task: 'pretrain', attempt, status: attempt === 1 ? 'failed' : 'succeeded', ...(attempt === 1 ? { error: 'worker lost' } : { details: { epochs: 2 } }) });
  }
  for (const task of ['pretrain', 'fold-0']) {
    for (const epoch of [1, 2]) {
      await tracking.recordEpoch({ experimentId: ids.high, task, attempt: 2, epoch, trainLoss: 1 / epoch, trainAccuracy: 0.5, validationLoss: null, validationAccuracy: 0.4 + epoch / 10, learningRate: 0.001, durationMs: 120, imagesPerSecond: 9.5 });
    }
  }
  await tracking.recordFold({ experimentId: ids.high, foldIndex: 0, status: 'succeeded', trainCount: 16, testCount: 8, accuracy: 0.875, confusionMatrix: summary(0.5).confusionMatrix, report: { normal: { precision: 1, recall: 0.5, f1: 0.667, support: 2 } }, modelKey: `experiments/${ids.high}/folds/0/final` });
  await tracking.recordArtifacts(ids.high, [{ kind: 'grad_cam', key: `experiments/${ids.high}/gradcam/covid/x-pred-normal.png`, sizeBytes: 5n, sha256: 'a'.repeat(64), contentType: 'image/png' }]);
  await tracking.markExperimentFinished(ids.low, { status: 'succeeded', summary: summary(0.61) });
  await tracking.markExperimentFinished(ids.high, { status: 'succeeded', summary: summary(0.83) });
  await tracking.markExperimentFinished(ids.lone, { status: 'failed', error: 'boom' });
}, 120_000);

afterAll(async () => {
  await Promise.all([tracking?.close(), sweeps?.close(), queries?.close()]);
  await database?.drop();
});

describe('run history for the dashboard', () => {
  it('reads a run in one statement exactly as the tracking store reads it', async () => {
    const expected = await tracking.getExperiment(ids.high);
    const actual = await queries.getRun(ids.high);
    expect(actual).toEqual(expected);
    expect(actual?.stageAttempts.map((a) => `${a.task}#${a.attempt}:${a.status}`)).toEqual(['pretrain#1:failed', 'pretrain#2:succeeded']);
    expect(actual?.epochMetrics).toHaveLength(4);
    expect(await queries.getRuns([ids.lone, ids.high])).toEqual([await tracking.getExperiment(ids.lone), expected]);
    expect(await queries.getRun(randomUUID())).toBeNull();
  });

  it('sorts by the generated accuracy and duration columns, runs without a value last in both orders', async () => {
    const names = async (sort: 'meanAccuracy' | 'durationMs', order: 'asc' | 'desc') =>
      (await queries.listRuns({ page: 1, pageSize: 10, sort, order })).items.map((item) => item.name);
    expect(await names('meanAccuracy', 'desc')).toEqual(['sweep-high', 'sweep-low', expect.any(String), expect.any(String)]);
    expect((await names('meanAccuracy', 'asc')).slice(0, 2)).toEqual(['sweep-low', 'sweep-high']);
    // Still running: no final duration, so last either way, though the list shows its live duration.
    expect((await names('durationMs', 'desc')).at(-1)).toBe('sweep-running');
    expect((await names('durationMs', 'asc')).at(-1)).toBe('sweep-running');
    const page = await queries.listRuns({ page: 1, pageSize: 10, sort: 'meanAccuracy', order: 'desc' });
    expect(page.items[0]).toMatchObject({ meanAccuracy: 0.83, stdAccuracy: 0.014, architecture: 'alexnet' });
    expect(page.items.find((item) => item.name === 'sweep-running')?.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('filters by sweep and names each run’s sweep', async () => {
    const page = await queries.listRuns({ page: 1, pageSize: 10, sort: 'createdAt', order: 'asc', sweepId });
    expect(page.items.map((item) => item.name)).toEqual(['sweep-low', 'sweep-high', 'sweep-running']);
    expect(page.items[1]?.sweep).toEqual({ id: sweepId, name: 'lr-sweep', index: 1 });
    const all = await queries.listRuns({ page: 1, pageSize: 10, sort: 'createdAt', order: 'asc' });
    expect(all.items.find((item) => item.name === 'lone')?.sweep).toBeNull();
    expect((await queries.listRuns({ page: 1, pageSize: 10, sort: 'createdAt', order: 'asc', sweepId: randomUUID() })).total).toBe(0);
    await expect(queries.listRuns({ page: 1, pageSize: 10, sort: 'createdAt', order: 'asc', sweepId: "x' OR 1=1" })).rejects.toThrow(/sweep id must be a UUID/);
  });

  it('lists sweeps with counts per status and loads a whole sweep in plan order', async () => {
    const list = await queries.listSweeps({ page: 1, pageSize: 10 });
    expect(list.total).toBe(1);
    expect(list.items[0]).toMatchObject({ id: sweepId, name: 'lr-sweep', planned: 3, bestMeanAccuracy: 0.83 });
    expect(list.items[0]?.counts).toEqual({ pending: 0, queued: 0, running: 1, succeeded: 2, failed: 0, cancelled: 0 });
    const whole = await queries.getSweepRuns(sweepId);
    expect(whole?.runs.map((run) => run.name)).toEqual(['sweep-low', 'sweep-high', 'sweep-running']);
    expect(whole?.sweep.plan).toHaveLength(3);
    expect(whole?.truncated).toBe(false);
    expect(await queries.getSweepRuns(randomUUID())).toBeNull();
  });

  it('serves a fold model prefix only for a succeeded fold of that run', async () => {
    expect(await queries.findFoldModel(ids.high, 0)).toBe(`experiments/${ids.high}/folds/0/final`);
    expect(await queries.findFoldModel(ids.high, 1)).toBeNull();
    expect(await queries.findFoldModel(ids.low, 0)).toBeNull();
    expect(await queries.listArchitectures()).toEqual(['alexnet', 'small-vgg', 'vgg16']);
  });
});
