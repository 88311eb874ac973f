import { parseExperimentConfig } from '@detl/config';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRunHistoryQueries, type RunHistoryQueries } from './run-history-queries';
import { createSweepStore, type SweepStore } from './sweep-store';
import { createTestDatabase, type TestDatabase } from './test-database';
import { createTrackingStore } from './tracking-store';
import type { TrackingStore } from './tracking-types';

// JSON columns are parsed with their schemas on every read: a row someone wrote by hand (or an
// older release wrote differently) fails where it is read, naming table, column and row id.

let database: TestDatabase;
let store: TrackingStore;
let queries: RunHistoryQueries;
let sweeps: SweepStore;

async function sql(text: string, values: unknown[]): Promise<void> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    await client.query(text, values);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  database = await createTestDatabase();
  store = createTrackingStore(database.url);
  queries = createRunHistoryQueries(database.url);
  sweeps = createSweepStore(database.url);
}, 120_000);

afterAll(async () => {
  await Promise.all([store?.close(), queries?.close(), sweeps?.close()]);
  await database?.drop();
});

async function newExperiment(workflowId: string): Promise<string> {
  const config = parseExperimentConfig({ name: workflowId });
  return (await store.createExperiment({ workflowId, name: workflowId, config, configHash: 'h', seed: config.seed })).id;
}

describe('JSON columns read from PostgreSQL', () => {
  it('round-trip through their schemas: config defaults, summary, details, fold report', async () => {
    const id = await newExperiment('wf-json-ok');
    await store.startStageAttempt({ experimentId: id, stage: 'sample_dataset', task: 'sample', attempt: 1, workerIdentity: 'w' });
    await store.finishStageAttempt({ experimentId: id, task: 'sample', attempt: 1, status: 'succeeded', details: { images: 12, keys: ['a'] } });
    await store.recordFold({
      experimentId: id,
      foldIndex: 0,
      status: 'succeeded',
      trainCount: 8,
      testCount: 2,
      accuracy: 0.5,
      confusionMatrix: [[1, 0], [1, 0]],
      report: { normal: { precision: 0.5, recall: 1, f1: 0.67, support: 1 } },
      modelKey: 'experiments/x/folds/0/final',
    });
    // A config recorded before a field existed reads with that field's default.
    await sql(`UPDATE experiments SET config = config #- '{runtime,heartbeatTimeoutSeconds}' WHERE id = $1::uuid`, [id]);
    const run = await store.getExperiment(id);
    expect(run?.config.runtime.heartbeatTimeoutSeconds).toBe(30);
    expect(run?.stageAttempts[0]?.details).toEqual({ images: 12, keys: ['a'] });
    expect(run?.folds[0]?.report?.['normal']?.support).toBe(1);
    const detail = await queries.getRun(id);
    expect(detail?.folds[0]?.confusionMatrix).toEqual([[1, 0], [1, 0]]);
  });

  it("reads a run recorded before gradCam.method existed as Grad-CAM, the method it used, not today's default", async () => {
    const id = await newExperiment('wf-gradcam-method');
    expect((await store.getExperiment(id))?.config.gradCam.method).toBe('grad-cam++');
    await sql(`UPDATE experiments SET config = config #- '{gradCam,method}' WHERE id = $1::uuid`, [id]);
    expect((await store.getExperiment(id))?.config.gradCam).toEqual({ imagesPerClass: 2, method: 'grad-cam' });
    expect((await queries.getRun(id))?.config.gradCam.method).toBe('grad-cam');
    await sql(`UPDATE experiments SET config = config - 'gradCam' WHERE id = $1::uuid`, [id]);
    expect((await store.getExperiment(id))?.config.gradCam).toEqual({ imagesPerClass: 2, method: 'grad-cam' });
    await sql(`UPDATE experiments SET config = jsonb_set(config, '{gradCam}', '{"method": "hires-cam"}') WHERE id = $1::uuid`, [id]);
    expect((await store.getExperiment(id))?.config.gradCam.method).toBe('hires-cam');
  });

  it.each([
    ['experiments', 'summary', `UPDATE experiments SET summary = '{"meanAccuracy": "high"}'::jsonb WHERE id = $1::uuid`, /experiments\.summary of row [0-9a-f-]{36} is malformed: .*meanAccuracy/],
    ['experiments', 'config', `UPDATE experiments SET config = jsonb_set(config, '{dataset,imageSize}', '"big"') WHERE id = $1::uuid`, /experiments\.config of row [0-9a-f-]{36} is malformed: dataset\.imageSize/],
    ['folds', 'report', `INSERT INTO folds (experiment_id, fold_index, status, train_count, test_count, report, updated_at) VALUES ($1::uuid, 0, 'running', 1, 1, '[1, 2]'::jsonb, now())`, /folds\.report of row [0-9a-f-]{36} is malformed/],
  ])('a malformed %s.%s names the table, column and row', async (_table, _column, statement, expected) => {
    const id = await newExperiment(`wf-json-bad-${_table}-${_column}`);
    await sql(statement, [id]);
    await expect(store.getExperiment(id)).rejects.toThrow(expected);
    await expect(queries.getRun(id)).rejects.toThrow(expected);
    await expect(store.getExperiment(id)).rejects.toMatchObject({ name: 'TrackingError', code: 'invalid_row' });
  });

  it('parses the sweep plan too', async () => {
    const sweepId = '5f0c8a52-1111-4a4a-9b9b-0123456789ab';
    await sweeps.registerSweep({ id: sweepId, name: 's', workflowId: 'wf-sweep-json', spec: { name: 's' }, plan: [{ index: 0, workflowId: 'wf-a', overrides: { seed: 1 } }], concurrency: 1 });
    expect((await sweeps.getSweep(sweepId))?.plan).toEqual([{ index: 0, workflowId: 'wf-a', overrides: { seed: 1 } }]);
    await sql(`UPDATE sweeps SET plan = '[{"index": "first"}]'::jsonb WHERE id = $1::uuid`, [sweepId]);
    await expect(sweeps.getSweep(sweepId)).rejects.toThrow(/sweeps\.plan of row 5f0c8a52-1111-4a4a-9b9b-0123456789ab is malformed: 0\.index/);
  });
});
