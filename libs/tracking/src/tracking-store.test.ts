import { parseExperimentConfig } from '@detl/config';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './test-database';
import { testResultSummary } from './test-result-summary';
import { createTrackingStore } from './tracking-store';
import { TrackingError, type ExperimentRecord, type RecordEpochInput, type TrackingStore } from './tracking-types';

let database: TestDatabase;
let store: TrackingStore;
const config = parseExperimentConfig({ name: 'store-test', seed: 7 });
const sha = (digit: string): string => digit.repeat(64);

beforeAll(async () => {
  database = await createTestDatabase();
  store = createTrackingStore(database.url);
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
});

async function newExperiment(workflowId: string): Promise<ExperimentRecord> {
  return store.createExperiment({ workflowId, name: config.name, config, configHash: 'hash-a', seed: config.seed });
}

function epoch(experimentId: string, overrides: Partial<RecordEpochInput> = {}): RecordEpochInput {
  return {
    experimentId,
    task: 'pretrain',
    attempt: 1,
    epoch: 0,
    trainLoss: 0.69,
    trainAccuracy: 0.5,
    validationLoss: 0.7,
    validationAccuracy: 0.48,
    learningRate: 1e-3,
    durationMs: 1234,
    imagesPerSecond: 48.5,
    checkpointKey: 'experiments/x/pretrain/epoch-0/model.json',
    ...overrides,
  };
}

describe('experiments', () => {
  it('creates an experiment once per workflow id and returns the same row again', async () => {
    const first = await newExperiment('wf-create');
    expect(first).toMatchObject({ workflowId: 'wf-create', status: 'queued', seed: 7, backend: null, summary: null, startedAt: null });
    expect(first.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.config).toEqual(config);
    const again = await Promise.all([newExperiment('wf-create'), newExperiment('wf-create')]);
    expect(again.map((e) => e.id)).toEqual([first.id, first.id]);
    await expect(
      store.createExperiment({ workflowId: 'wf-create', name: 'x', config, configHash: 'hash-b', seed: 7 }),
    ).rejects.toThrow(/already has an experiment with config hash hash-a, not hash-b/);
  });

  it('creates concurrently for different workflows without losing any', async () => {
    const created = await Promise.all(Array.from({ length: 12 }, (_, i) => newExperiment(`wf-parallel-${i}`)));
    expect(new Set(created.map((e) => e.id)).size).toBe(12);
  });

  it('runs, keeps the first start time, and finishes once', async () => {
    const experiment = await newExperiment('wf-lifecycle');
    const running = await store.markExperimentRunning(experiment.id, { backend: 'wasm' });
    expect(running).toMatchObject({ status: 'running', backend: 'wasm' });
    expect(running.startedAt).toBeInstanceOf(Date);
    const again = await store.markExperimentRunning(experiment.id);
    expect(again.startedAt).toEqual(running.startedAt);
    expect(again.backend).toBe('wasm');
    await store.setDatasetManifest(experiment.id, 'manifests/abc.json');
    const summary = testResultSummary({ reportKey: 'experiments/x/report/summary.json', figureKeys: ['experiments/x/report/confusion-matrix.png'] });
    const finished = await store.markExperimentFinished(experiment.id, { status: 'succeeded', summary });
    expect(finished).toMatchObject({ status: 'succeeded', summary, datasetManifestKey: 'manifests/abc.json', error: null });
    const finishedAgain = await store.markExperimentFinished(experiment.id, { status: 'succeeded', summary });
    expect(finishedAgain.finishedAt).toEqual(finished.finishedAt);
    await expect(store.markExperimentRunning(experiment.id)).rejects.toMatchObject({ code: 'conflict' });
  });

  it('rejects malformed and unknown ids with clear errors', async () => {
    await expect(store.markExperimentRunning('not-a-uuid')).rejects.toThrow(new TrackingError('invalid_argument', 'experiment id must be a UUID, got "not-a-uuid"'));
    await expect(store.markExperimentRunning('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({
      code: 'not_found',
      message: 'experiment 00000000-0000-4000-8000-000000000000 does not exist',
    });
    await expect(store.setDatasetManifest('00000000-0000-4000-8000-000000000000', 'k')).rejects.toMatchObject({ code: 'not_found' });
    await expect(store.recordEpoch(epoch('00000000-0000-4000-8000-000000000000'))).rejects.toMatchObject({ code: 'not_found' });
    await expect(store.getExperiment('00000000-0000-4000-8000-000000000000')).resolves.toBeNull();
    await expect(store.markExperimentFinished('00000000-0000-4000-8000-000000000000', { status: 'running' as 'failed' })).rejects.toThrow(/status must be one of succeeded, failed, cancelled/);
  });
});

describe('activity records', () => {
  it('records a stage attempt with its duration, and a retry as a second attempt', async () => {
    const { id } = await newExperiment('wf-stages');
    const started = await store.startStageAttempt({ experimentId: id, stage: 'pretrain', task: 'pretrain', attempt: 1, workerIdentity: 'worker-1@host' });
    expect(started).toMatchObject({ status: 'running', finishedAt: null, durationMs: null, details: {} });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const failed = await store.finishStageAttempt({ experimentId: id, task: 'pretrain', attempt: 1, status: 'failed', error: 'worker lost' });
    expect(failed.status).toBe('failed');
    expect(failed.durationMs).toBeGreaterThanOrEqual(15);
    expect(failed.finishedAt!.getTime() - failed.startedAt.getTime()).toBe(failed.durationMs);
    await store.startStageAttempt({ experimentId: id, stage: 'pretrain', task: 'pretrain', attempt: 2, workerIdentity: 'worker-2@host' });
    await store.finishStageAttempt({ experimentId: id, task: 'pretrain', attempt: 2, status: 'succeeded', details: { epochs: 3 } });
    const detail = await store.getExperiment(id);
    expect(detail?.stageAttempts.map((a) => [a.task, a.attempt, a.status, a.error, a.details])).toEqual([
      ['pretrain', 1, 'failed', 'worker lost', {}],
      ['pretrain', 2, 'succeeded', null, { epochs: 3 }],
    ]);
    await expect(store.finishStageAttempt({ experimentId: id, task: 'fold-9', attempt: 1, status: 'succeeded' })).rejects.toThrow(/no attempt 1 of task fold-9/);
    await expect(store.startStageAttempt({ experimentId: id, stage: 'train' as 'pretrain', task: 't', attempt: 1, workerIdentity: 'w' })).rejects.toThrow(/stage must be one of sample_dataset/);
  });

  it('writes the same epoch twice as one row holding the last values', async () => {
    const { id } = await newExperiment('wf-epochs');
    await store.recordEpoch(epoch(id));
    await store.recordEpoch(epoch(id, { trainLoss: 0.5, validationLoss: null, validationAccuracy: null, checkpointKey: null }));
    await store.recordEpoch(epoch(id, { epoch: 1, trainLoss: 0.4 }));
    await store.recordEpoch(epoch(id, { attempt: 2 }));
    const detail = await store.getExperiment(id);
    expect(detail?.epochMetrics.map((m) => [m.attempt, m.epoch, m.trainLoss, m.validationLoss, m.checkpointKey])).toEqual([
      [1, 0, 0.5, null, null],
      [1, 1, 0.4, 0.7, 'experiments/x/pretrain/epoch-0/model.json'],
      [2, 0, 0.69, 0.7, 'experiments/x/pretrain/epoch-0/model.json'],
    ]);
    await expect(store.recordEpoch(epoch(id, { trainLoss: Number.NaN }))).rejects.toThrow(/trainLoss must be a finite number/);
    await expect(store.recordEpoch(epoch(id, { epoch: -1 }))).rejects.toThrow(/epoch must be an integer/);
  });

  it('upserts folds and checks a succeeded fold is complete and consistent', async () => {
    const { id } = await newExperiment('wf-folds');
    await store.recordFold({ experimentId: id, foldIndex: 0, status: 'running', trainCount: 80, testCount: 4 });
    const matrix = [
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 1, 0],
    ];
    const report = { covid: { precision: 1, recall: 0, f1: 0, support: 1 } };
    await store.recordFold({ experimentId: id, foldIndex: 0, status: 'succeeded', trainCount: 80, testCount: 4, accuracy: 0.75, confusionMatrix: matrix, report, modelKey: 'experiments/x/folds/0/final/model.json' });
    const detail = await store.getExperiment(id);
    expect(detail?.folds).toHaveLength(1);
    expect(detail?.folds[0]).toMatchObject({ foldIndex: 0, status: 'succeeded', accuracy: 0.75, confusionMatrix: matrix, report });
    await expect(store.recordFold({ experimentId: id, foldIndex: 1, status: 'succeeded', trainCount: 80, testCount: 4, accuracy: 1 })).rejects.toThrow(
      /fold 1 succeeded but lacks confusionMatrix, report, modelKey/,
    );
    await expect(
      store.recordFold({ experimentId: id, foldIndex: 1, status: 'succeeded', trainCount: 80, testCount: 5, accuracy: 1, confusionMatrix: matrix, report, modelKey: 'k' }),
    ).rejects.toThrow(/counts 4 images but testCount is 5/);
    await expect(store.recordFold({ experimentId: id, foldIndex: 1, status: 'running', trainCount: 1, testCount: 1, confusionMatrix: [[1, 2]] })).rejects.toThrow(/square matrix/);
  });

  it('records artifacts in batches, once per key, with sizes beyond 32 bits', async () => {
    const { id } = await newExperiment('wf-artifacts');
    const shards = Array.from({ length: 450 }, (_, i) => ({ kind: 'shard' as const, key: `shards/${String(i).padStart(4, '0')}.u8`, sizeBytes: 1000 + i, sha256: sha('a'), contentType: 'application/octet-stream' }));
    expect(await store.recordArtifacts(id, shards)).toBe(450);
    const big = { kind: 'model' as const, key: 'experiments/x/model.bin', sizeBytes: 5_000_000_000, sha256: sha('b'), contentType: 'application/octet-stream' };
    expect(await store.recordArtifacts(id, [big, { ...big, sha256: sha('c') }, shards[0]!])).toBe(2);
    const detail = await store.getExperiment(id);
    expect(detail?.artifacts).toHaveLength(451);
    expect(detail?.artifacts.find((a) => a.key === big.key)).toMatchObject({ sizeBytes: 5_000_000_000, sha256: sha('c'), kind: 'model' });
    await expect(store.recordArtifacts(id, [{ ...big, sha256: 'XYZ' }])).rejects.toThrow(/sha256 of experiments\/x\/model.bin must be 64 lowercase hex digits/);
    await expect(store.recordArtifacts('00000000-0000-4000-8000-000000000000', [big])).rejects.toMatchObject({ code: 'not_found' });
    expect(await store.recordArtifacts(id, [])).toBe(0);
    await expect(store.recordArtifacts(id, [{ ...big, kind: 'video' as 'model' }])).rejects.toThrow(/kind of experiments\/x\/model.bin must be one of/);
  });
});

describe('reading the history', () => {
  it('finds an experiment by id or by workflow id', async () => {
    const experiment = await newExperiment('wf-lookup');
    expect((await store.getExperiment(experiment.id))?.workflowId).toBe('wf-lookup');
    expect((await store.getExperiment(experiment.id.toUpperCase()))?.id).toBe(experiment.id);
    expect((await store.getExperiment('wf-lookup'))?.id).toBe(experiment.id);
    expect(await store.getExperiment('wf-missing')).toBeNull();
  });

  it('pages through experiments newest first and filters by status', async () => {
    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<TrackingStore['listExperiments']>> = await store.listExperiments({ limit: 4, cursor });
      expect(page.items.length).toBeLessThanOrEqual(4);
      all.push(...page.items.map((e) => e.id));
      cursor = page.nextCursor;
    } while (cursor !== null);
    const everything = (await store.listExperiments({ limit: 500 })).items;
    expect(all).toEqual(everything.map((e) => e.id));
    expect(new Set(all).size).toBe(all.length);
    const times = everything.map((e) => e.createdAt.getTime());
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const succeeded = await store.listExperiments({ limit: 10, status: 'succeeded' });
    expect(succeeded.items.length).toBeGreaterThan(0);
    expect(succeeded.items.every((e) => e.status === 'succeeded')).toBe(true);
    await expect(store.listExperiments({ limit: 0 })).rejects.toThrow(/limit must be an integer in \[1, 500\]/);
    await expect(store.listExperiments({ limit: 5, cursor: 'abc' })).rejects.toThrow(/cursor must be a UUID/);
  });

  it('finds experiments by an id prefix, as a short id resolves, and counts them by status', async () => {
    // Two ids sharing the prefix abcd12 (set directly: gen_random_uuid picks them otherwise).
    const [first, second] = [await newExperiment('wf-prefix-1'), await newExperiment('wf-prefix-2')];
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query('UPDATE experiments SET id = $1 WHERE id = $2', ['abcd1234-0000-4000-8000-000000000001', first.id]);
      await client.query('UPDATE experiments SET id = $1 WHERE id = $2', ['abcd1299-0000-4000-8000-000000000002', second.id]);
    } finally {
      await client.end();
    }
    expect((await store.findExperimentsByIdPrefix('abcd12')).map((e) => e.workflowId)).toEqual(['wf-prefix-2', 'wf-prefix-1']);
    expect((await store.findExperimentsByIdPrefix('ABCD123')).map((e) => e.workflowId)).toEqual(['wf-prefix-1']);
    expect((await store.findExperimentsByIdPrefix('abcd12', 1)).length).toBe(1);
    expect(await store.findExperimentsByIdPrefix('ffffffff-ffff')).toEqual([]);
    await expect(store.findExperimentsByIdPrefix('abc')).rejects.toThrow(/id prefix must be 4 to 36 hex digits/);
    await expect(store.findExperimentsByIdPrefix("abcd'%")).rejects.toThrow(/id prefix must be/);

    const counts = await store.countExperimentsByStatus();
    expect(Object.keys(counts)).toEqual(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    expect(total).toBe((await store.listExperiments({ limit: 500 })).items.length);
    expect(counts.succeeded).toBe((await store.listExperiments({ limit: 500, status: 'succeeded' })).items.length);
  });
});
