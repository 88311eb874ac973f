import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExperimentConfig } from '@detl/config';
import { oneLineTemporalLog, startTestTemporal } from '@detl/services/testing';
import type { DetlActivities, FoldResult } from '@detl/activities';
import { experimentWorkflow, progressQuery } from './workflows';

// The orchestration is tested against the real Temporal dev server with recording activities;
// the real activities are exercised end to end in apps/worker's e2e test.
// Warnings only, one line each (see oneLineTemporalLog).
Runtime.install({ logger: new DefaultLogger('WARN', oneLineTemporalLog) });
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await startTestTemporal();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

const config = parseExperimentConfig({ name: 'workflow-test', dataset: { folds: 5 } });

const runtime = { backend: 'wasm', tensorflowVersion: null, gpu: false, intraOpThreads: 1, interOpThreads: 1 };

function fold(index: number): FoldResult {
  const matrix = [
    [index, 1, 0, 0],
    [0, 2, 0, 0],
    [0, 0, 3, 0],
    [0, 0, 0, 4],
  ];
  return { fold: index, accuracy: 0.5, confusionMatrix: matrix, trainCount: 40, testCount: 10, modelPrefix: `m/${index}`, predictionsKey: `p/${index}`, runtime };
}

interface Recorder {
  calls: string[];
  finished: { status: string; error?: string }[];
  concurrentFolds: number;
  maxConcurrentFolds: number;
  sampleAttempts: number;
}

function recordingActivities(recorder: Recorder, options: { failSampleWith?: Error } = {}): DetlActivities {
  const activities: Partial<Record<keyof DetlActivities, (...args: never[]) => Promise<unknown>>> = {
    registerExperiment: async () => {
      recorder.calls.push('registerExperiment');
      return { experimentId: 'exp-1' };
    },
    markExperimentRunning: async () => {
      recorder.calls.push('markExperimentRunning');
    },
    finishExperiment: async (input: { status: string; error?: string }) => {
      recorder.finished.push({ status: input.status, error: input.error });
    },
    sampleDataset: async () => {
      recorder.sampleAttempts += 1;
      recorder.calls.push('sampleDataset');
      if (options.failSampleWith) throw options.failSampleWith;
      return { manifestKey: 'manifests/x.json', counts: { dataB: {}, dataA: { train: 1, validation: 1 } }, shardsWritten: 1, shardsReused: 0, warnings: [] };
    },
    pretrainFromScratch: async () => {
      recorder.calls.push('pretrainFromScratch');
      return { modelPrefix: 'experiments/exp-1/pretrain/best', bestEpoch: 1, bestValidationAccuracy: 0.9, epochsRun: 2, backend: 'wasm' };
    },
    fineTuneFold: async (input: { fold: number; pretrainedModelPrefix: string | null }) => {
      recorder.calls.push(`fineTuneFold:${input.fold}:${input.pretrainedModelPrefix}`);
      recorder.concurrentFolds += 1;
      recorder.maxConcurrentFolds = Math.max(recorder.maxConcurrentFolds, recorder.concurrentFolds);
      await new Promise((resolve) => setTimeout(resolve, 300));
      recorder.concurrentFolds -= 1;
      return fold(input.fold);
    },
    aggregateResults: async (input: { folds: FoldResult[] }) => {
      recorder.calls.push(`aggregateResults:${input.folds.map((f) => f.fold).join(',')}`);
      return {
        foldAccuracies: input.folds.map((f) => f.accuracy),
        meanAccuracy: 0.5,
        stdAccuracy: 0,
        summedConfusionMatrix: [],
        classNames: [],
        perClass: [],
        macroF1: 0,
        accuracyInterval: { lower: 0, upper: 1 },
        rocAuc: {},
        reportKey: 'r',
        figureKeys: [],
      };
    },
    generateGradCams: async () => {
      recorder.calls.push('generateGradCams');
      return { overlayKeys: ['g.png'], pointingGameRate: null };
    },
  };
  return activities as unknown as DetlActivities;
}

async function runWith(activities: DetlActivities, body: (taskQueue: string) => Promise<void>) {
  const taskQueue = `test-${randomUUID()}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('./workflows.ts'),
    activities,
    maxConcurrentActivityTaskExecutions: 10,
  });
  await worker.runUntil(body(taskQueue));
}

const newRecorder = (): Recorder => ({ calls: [], finished: [], concurrentFolds: 0, maxConcurrentFolds: 0, sampleAttempts: 0 });

describe('experimentWorkflow on the Temporal dev server', () => {
  it('chains the stages, fine-tunes every fold in parallel from the pretrained model and records success', async () => {
    const recorder = newRecorder();
    await runWith(recordingActivities(recorder), async (taskQueue) => {
      const handle = await env.client.workflow.start(experimentWorkflow, { taskQueue, workflowId: `wf-${randomUUID()}`, args: [{ config }] });
      const result = await handle.result();
      expect(result.folds.map((f) => f.fold)).toEqual([0, 1, 2, 3, 4]);
      expect(result.experimentId).toBe('exp-1');
      const progress = await handle.query(progressQuery);
      expect(Object.values(progress.stages)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
      expect(progress.folds).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
    });
    expect(recorder.calls.slice(0, 4)).toEqual(['registerExperiment', 'markExperimentRunning', 'sampleDataset', 'pretrainFromScratch']);
    const foldCalls = recorder.calls.filter((call) => call.startsWith('fineTuneFold'));
    expect(foldCalls.sort()).toEqual([0, 1, 2, 3, 4].map((i) => `fineTuneFold:${i}:experiments/exp-1/pretrain/best`));
    expect(recorder.maxConcurrentFolds).toBeGreaterThan(1);
    expect(recorder.calls).toContain('aggregateResults:0,1,2,3,4');
    expect(recorder.calls.at(-1)).toBe('generateGradCams');
    expect(recorder.finished).toEqual([{ status: 'succeeded', error: undefined }]);
  }, 60_000);

  it('skips pretraining for the 4-class scratch baseline', async () => {
    const recorder = newRecorder();
    const scratch = parseExperimentConfig({ name: 'scratch-test', fineTune: { freeze: 'scratch' } });
    await runWith(recordingActivities(recorder), async (taskQueue) => {
      const handle = await env.client.workflow.start(experimentWorkflow, { taskQueue, workflowId: `wf-${randomUUID()}`, args: [{ config: scratch }] });
      const result = await handle.result();
      expect(result.pretrainedModelPrefix).toBeNull();
      expect((await handle.query(progressQuery)).stages.pretrainFromScratch).toBe('skipped');
    });
    expect(recorder.calls).not.toContain('pretrainFromScratch');
    expect(recorder.calls.filter((call) => call.startsWith('fineTuneFold')).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `fineTuneFold:${i}:null`));
  }, 60_000);

  it('fails the run without retrying when the data is bad, and records the failure', async () => {
    const recorder = newRecorder();
    // Retryable as far as the activity is concerned: only the workflow's retry policy may stop it.
    const bad = ApplicationFailure.create({ type: 'DatasetError', message: 'class "covid" has 3 patients, fewer than the 5 folds', nonRetryable: false });
    await runWith(recordingActivities(recorder, { failSampleWith: bad }), async (taskQueue) => {
      const handle = await env.client.workflow.start(experimentWorkflow, { taskQueue, workflowId: `wf-${randomUUID()}`, args: [{ config }] });
      const error = await handle.result().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkflowFailedError);
      const progress = await handle.query(progressQuery);
      expect(progress.stages.sampleDataset).toBe('failed');
      expect(progress.stages.pretrainFromScratch).toBe('pending');
      expect(progress.error).toContain('fewer than the 5 folds');
    });
    expect(recorder.sampleAttempts).toBe(1);
    expect(recorder.calls).not.toContain('pretrainFromScratch');
    expect(recorder.finished).toHaveLength(1);
    expect(recorder.finished[0]?.status).toBe('failed');
    expect(recorder.finished[0]?.error).toContain('fewer than the 5 folds');
  }, 60_000);
});
