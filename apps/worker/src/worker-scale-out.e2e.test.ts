import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExperimentConfig } from '@detl/config';
import { experimentWorkflow } from '@detl/workflows';
import { killProcess, startTestServices, startWorkerProcess, type TestServices } from './test-support/fault-services';

// Scale-out is "start another worker on the same services": two real worker processes, one training
// slot each, poll one task queue, and the run record must show the folds trained by both.
let services: TestServices;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  services = await startTestServices('scale-out');
}, 240_000);

afterAll(async () => {
  await Promise.all(workers.map((worker) => killProcess(worker)));
  await services?.stop();
});

describe('two worker processes on one task queue', () => {
  it('share the folds of one experiment, as the attempts table shows', async () => {
    const settings = services.settings();
    const output: string[] = [];
    // One activity at a time each: the second worker is the only way two folds can run at once.
    for (let i = 0; i < 2; i += 1) workers.push(startWorkerProcess(settings, output, { DETL_WORKER_SLOTS: '1' }));
    const config = parseExperimentConfig({
      name: 'scale-out',
      seed: 4,
      dataset: { source: { kind: 'synthetic', imagesPerClass: 8, pretrainImagesPerClass: 16 }, imageSize: 32, folds: 4 },
      model: { architecture: 'small-vgg', widthMultiplier: 0.5 },
      pretrain: { epochs: 1, batchSize: 8 },
      fineTune: { epochs: 3, batchSize: 8 },
      gradCam: { imagesPerClass: 0 },
    });
    const workflowId = `scale-${randomUUID()}`;
    const result = await services.env.client.workflow.execute(experimentWorkflow, { taskQueue: settings.temporal.taskQueue, workflowId, args: [{ config }] });
    expect(result.folds).toHaveLength(4);

    const record = await services.tracking.getExperiment(workflowId);
    const folds = record?.stageAttempts.filter((attempt) => attempt.stage === 'fine_tune_fold') ?? [];
    expect(folds.every((attempt) => attempt.status === 'succeeded')).toBe(true);
    const identities = new Set(folds.map((attempt) => attempt.workerIdentity));
    expect(identities.size, `fold attempts by ${[...identities].join(', ')}`).toBe(2);
    // Two folds overlapped in time, which one slot per worker allows only across the two workers.
    const overlapping = folds.some((a) => folds.some((b) => a !== b && a.workerIdentity !== b.workerIdentity && a.startedAt < (b.finishedAt ?? new Date()) && b.startedAt < (a.finishedAt ?? new Date())));
    expect(overlapping).toBe(true);
    // Each training attempt records what it ran on; one slot per worker leaves it all the cores
    // (TensorFlow's threads), wasm always computes on one.
    for (const attempt of folds) {
      const runtime = attempt.details['runtime'] as { backend: string; intraOpThreads: number; tensorflowVersion: string | null };
      expect(['tensorflow', 'wasm']).toContain(runtime.backend);
      expect(runtime.intraOpThreads).toBe(runtime.backend === 'tensorflow' ? Math.max(1, os.availableParallelism()) : 1);
      expect(runtime.tensorflowVersion).toBe(runtime.backend === 'tensorflow' ? '2.21.0' : null);
    }
  }, 420_000);
});
