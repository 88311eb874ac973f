import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExperimentConfig, type ExperimentConfig } from '@detl/config';
import { startTestTemporal } from '@detl/services/testing';
import type { FoldResult } from '@detl/activities';
import { pretrainingKey, sweepWorkflow, type SweepWorkflowInput } from './sweep-workflow';

// The sweep's scheduling against the real Temporal dev server with recording activities: the
// concurrency limit, one pretraining per pretraining key, and what happens when that one fails.
// Real activities run in apps/cli's sweep end-to-end test.
Runtime.install({ logger: new DefaultLogger('ERROR') });
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await startTestTemporal();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

interface Recorder {
  pretrained: string[];
  fineTunedFrom: Map<string, string | null>;
  running: number;
  maxRunning: number;
  sweep: { registered: number; finished: { status: string; error?: string | null }[] };
}

const fold = (index: number): FoldResult =>
  ({ fold: index, accuracy: 0.5, confusionMatrix: [[1]], trainCount: 1, testCount: 1, modelPrefix: `m/${index}`, predictionsKey: `p/${index}`, runtime: {} }) as unknown as FoldResult;

function activities(recorder: Recorder, options: { failPretrainOf?: string } = {}) {
  const idOf = (workflowId: string) => `exp-${workflowId.split('-').pop()}`;
  return {
    registerSweep: async () => {
      recorder.sweep.registered += 1;
    },
    finishSweep: async (input: { status: string; error?: string | null }) => {
      recorder.sweep.finished.push({ status: input.status, error: input.error });
    },
    registerExperiment: async ({ workflowId }: { workflowId: string }) => {
      recorder.running += 1;
      recorder.maxRunning = Math.max(recorder.maxRunning, recorder.running);
      return { experimentId: idOf(workflowId) };
    },
    markExperimentRunning: async () => undefined,
    finishExperiment: async () => {
      recorder.running -= 1;
    },
    sampleDataset: async () => ({ manifestKey: 'manifests/x.json', counts: {}, shardsWritten: 0, shardsReused: 1, warnings: [] }),
    pretrainFromScratch: async ({ experimentId }: { experimentId: string }) => {
      recorder.pretrained.push(experimentId);
      await new Promise((resolve) => setTimeout(resolve, 150));
      if (experimentId === options.failPretrainOf) throw ApplicationFailure.nonRetryable('pretraining diverged', 'TrainingFailed');
      return { modelPrefix: `experiments/${experimentId}/pretrain/best`, bestEpoch: 1, bestValidationAccuracy: 1, epochsRun: 1, backend: 'cpu' };
    },
    fineTuneFold: async ({ experimentId, fold: index, pretrainedModelPrefix }: { experimentId: string; fold: number; pretrainedModelPrefix: string | null }) => {
      recorder.fineTunedFrom.set(experimentId, pretrainedModelPrefix);
      await new Promise((resolve) => setTimeout(resolve, 100));
      return fold(index);
    },
    aggregateResults: async () => ({ meanAccuracy: 0.5, stdAccuracy: 0, accuracyInterval: { lower: 0, upper: 1, level: 0.95 } }),
    generateGradCams: async () => ({ overlayKeys: [], pointingGameRate: null }),
  };
}

async function runSweep(recorder: Recorder, configs: ExperimentConfig[], concurrency: number, options: { failPretrainOf?: string } = {}) {
  const taskQueue = `sweep-test-${randomUUID()}`;
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath: require.resolve('./workflows.ts'), activities: activities(recorder, options), maxConcurrentActivityTaskExecutions: 20 });
  const workflowId = `sweep-${randomUUID()}`;
  const input: SweepWorkflowInput = {
    sweepId: randomUUID(),
    name: 'test',
    spec: {},
    concurrency,
    experiments: configs.map((config, index) => ({ index, workflowId: `${workflowId}-${index}`, overrides: {}, config })),
  };
  return worker.runUntil(env.client.workflow.execute(sweepWorkflow, { taskQueue, workflowId, args: [input] }));
}

const newRecorder = (): Recorder => ({ pretrained: [], fineTunedFrom: new Map(), running: 0, maxRunning: 0, sweep: { registered: 0, finished: [] } });
const make = (seed: number, fineTune: Record<string, unknown> = {}) => parseExperimentConfig({ seed, dataset: { folds: 2 }, fineTune });

describe('sweepWorkflow', () => {
  it('keys pretraining on what it depends on, not on fine-tuning', () => {
    expect(pretrainingKey(make(1, { learningRate: 0.01 }))).toBe(pretrainingKey(make(1, { learningRate: 0.1, freeze: 'none' })));
    expect(pretrainingKey(make(1))).not.toBe(pretrainingKey(make(2)));
    expect(pretrainingKey(make(1, { freeze: 'scratch' }))).toBeNull();
  });

  it('runs at most `concurrency` experiments at once and pretrains once per key, the others fine-tuning that model', async () => {
    const recorder = newRecorder();
    const configs = [make(1), make(1, { learningRate: 0.01 }), make(2), make(1, { freeze: 'none' }), make(3, { freeze: 'scratch' })];
    const result = await runSweep(recorder, configs, 2);
    expect(result.outcomes.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
    expect(recorder.maxRunning).toBe(2);
    expect(recorder.pretrained.sort()).toEqual(['exp-0', 'exp-2']);
    expect(Object.fromEntries(recorder.fineTunedFrom)).toEqual({
      'exp-0': 'experiments/exp-0/pretrain/best',
      'exp-1': 'experiments/exp-0/pretrain/best',
      'exp-2': 'experiments/exp-2/pretrain/best',
      'exp-3': 'experiments/exp-0/pretrain/best',
      'exp-4': null,
    });
    expect(result.outcomes.map((o) => o.reusedPretraining)).toEqual([null, 'experiments/exp-0/pretrain/best', null, 'experiments/exp-0/pretrain/best', null]);
    expect(recorder.sweep).toEqual({ registered: 1, finished: [{ status: 'succeeded', error: null }] });
  }, 120_000);

  it('when the shared pretraining fails, the experiments waiting for it pretrain themselves; the sweep records the failure', async () => {
    const recorder = newRecorder();
    const result = await runSweep(recorder, [make(1), make(1, { learningRate: 0.01 })], 2, { failPretrainOf: 'exp-0' });
    expect(result.outcomes.map((o) => o.status)).toEqual(['failed', 'succeeded']);
    expect(result.outcomes[0]?.error).toContain('pretraining diverged');
    expect(recorder.pretrained).toEqual(['exp-0', 'exp-1']);
    expect(recorder.sweep.finished).toEqual([{ status: 'failed', error: '1 of 2 experiments did not succeed: #0 failed' }]);
  }, 120_000);
});
