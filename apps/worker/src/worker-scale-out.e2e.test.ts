import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExperimentConfig, trainingTaskQueueOf } from '@detl/config';
import { experimentWorkflow } from '@detl/workflows';
import { killProcess, startTestServices, startWorkerProcess, until, type TestServices } from './test-support/fault-services';

// Scale-out is "start another worker on the same services": real worker processes, one polling
// only the main queue (workflows, bookkeeping, data) and two polling only the training queue with
// one training slot each. The run must complete across them, and the run record must show which
// process ran what.
let services: TestServices;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  services = await startTestServices('scale-out');
}, 240_000);

afterAll(async () => {
  await Promise.all(workers.map((worker) => killProcess(worker)));
  await services?.stop();
});

/** Tasks of the training activities (pretrainFromScratch, fineTuneFold), as the attempts table names them. */
const isTrainingTask = (task: string) => task === 'pretrain' || task.startsWith('fold-');

describe('worker processes on separate task queues', () => {
  it('a main-queue worker and two training-queue workers complete a run together; the training workers share the folds', async () => {
    const settings = services.settings();
    const trainingQueue = trainingTaskQueueOf(settings);
    const output: string[] = [];
    const main = startWorkerProcess(settings, output, { DETL_WORKER_QUEUES: settings.temporal.taskQueue, DETL_WORKER_SLOTS: '2' });
    // One training at a time each: the second training worker is the only way two folds can run at once.
    const trainers = [0, 1].map(() => startWorkerProcess(settings, output, { DETL_WORKER_QUEUES: trainingQueue, DETL_WORKER_SLOTS: '1' }));
    workers.push(main, ...trainers);
    // Each says which queues it polls and what it serves there.
    await until('three polling workers', 180_000, async () => (output.filter((line) => line.includes('polling task queue')).length >= 3 ? true : null));
    expect(output.some((line) => line.includes(`"${settings.temporal.taskQueue}" (workflows, bookkeeping, data, Grad-CAM) at`))).toBe(true);
    expect(output.filter((line) => line.includes(`task queues "${trainingQueue}" (training, 1 at once) at`))).toHaveLength(2);

    const config = parseExperimentConfig({
      name: 'scale-out',
      seed: 4,
      dataset: { source: { kind: 'synthetic', imagesPerClass: 8, pretrainImagesPerClass: 16 }, imageSize: 32, folds: 4 },
      model: { architecture: 'small-vgg', widthMultiplier: 0.5 },
      pretrain: { epochs: 1, batchSize: 8 },
      fineTune: { epochs: 3, batchSize: 8 },
      gradCam: { imagesPerClass: 1 },
    });
    const workflowId = `scale-${randomUUID()}`;
    const result = await services.env.client.workflow.execute(experimentWorkflow, {
      taskQueue: settings.temporal.taskQueue,
      workflowId,
      args: [{ config, trainingTaskQueue: trainingQueue }],
    });
    expect(result.folds).toHaveLength(4);

    const record = await services.tracking.getExperiment(workflowId);
    expect(record?.status).toBe('succeeded');
    const attempts = record?.stageAttempts ?? [];
    const pidOf = (identity: string | null) => Number(identity?.split('@')[0]);
    // Every training attempt ran on a training worker, everything else (sampling, aggregation,
    // Grad-CAM) on the main-queue worker, which never trained.
    const trainerPids = new Set(trainers.map((child) => child.pid));
    for (const attempt of attempts) {
      const expected = isTrainingTask(attempt.task) ? 'a training worker' : 'the main worker';
      const ranOn = trainerPids.has(pidOf(attempt.workerIdentity)) ? 'a training worker' : pidOf(attempt.workerIdentity) === main.pid ? 'the main worker' : attempt.workerIdentity;
      expect(ranOn, attempt.task).toBe(expected);
    }
    expect(attempts.map((attempt) => attempt.task)).toEqual(expect.arrayContaining(['sample', 'pretrain', 'fold-0', 'fold-3', 'aggregate', 'grad-cam']));

    const folds = attempts.filter((attempt) => attempt.task.startsWith('fold-'));
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
  }, 600_000);
});
