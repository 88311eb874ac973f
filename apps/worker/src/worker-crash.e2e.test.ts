import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExperimentConfig } from '@detl/config';
import { experimentWorkflow } from '@detl/workflows';
import { killProcess, startTestServices, startWorkerProcess, until, type TestServices } from './test-support/fault-services';

// Durability is claimed for a worker that dies without any chance to clean up, so the worker here
// is the real process (apps/worker/src/main.ts) and it gets SIGKILL mid-pretraining; a second
// worker process must carry the run on from the last stored epoch, losing at most one epoch.
let services: TestServices;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  services = await startTestServices('crash');
}, 240_000);

afterAll(async () => {
  await Promise.all(workers.map((worker) => killProcess(worker)));
  await services?.stop();
});

describe('a worker killed with SIGKILL mid-pretraining', () => {
  it('costs at most one epoch: a new worker process resumes from the last stored checkpoint and the dead attempt is recorded as failed', async () => {
    const settings = services.settings();
    const { tracking } = services;
    const output: string[] = [];
    const startWorker = () => {
      const worker = startWorkerProcess(settings, output);
      workers.push(worker);
      return worker;
    };
    const epochs = 14;
    const config = parseExperimentConfig({
      name: 'crash-test',
      seed: 5,
      dataset: { source: { kind: 'synthetic', imagesPerClass: 6, pretrainImagesPerClass: 80 }, imageSize: 32, folds: 2 },
      model: { architecture: 'small-vgg', widthMultiplier: 0.5 },
      pretrain: { epochs, batchSize: 8 },
      fineTune: { epochs: 1, batchSize: 8 },
      gradCam: { imagesPerClass: 0 },
      runtime: { heartbeatTimeoutSeconds: 15 },
    });
    const first = startWorker();
    const workflowId = `crash-${randomUUID()}`;
    const handle = await services.env.client.workflow.start(experimentWorkflow, { taskQueue: settings.temporal.taskQueue, workflowId, args: [{ config }] });

    const pretrainEpochs = async () => (await tracking.getExperiment(workflowId))?.epochMetrics.filter((row) => row.task === 'pretrain') ?? [];
    // Generous: on a loaded machine the worker's start (workflow bundle) alone took 67 s.
    await until('two pretraining epochs', 300_000, async () => ((await pretrainEpochs()).length >= 2 ? true : null));
    first.kill('SIGKILL');
    await new Promise<void>((resolve) => (first.exitCode !== null || first.signalCode !== null ? resolve() : first.once('exit', () => resolve())));
    // What survived the kill: every epoch whose checkpoint and row were stored.
    const stored = Math.max(...(await pretrainEpochs()).map((row) => row.epoch));
    expect(stored).toBeLessThan(epochs);

    const restartedAt = Date.now();
    startWorker();
    const result = await handle.result();
    expect(result.folds).toHaveLength(2);

    const record = await tracking.getExperiment(workflowId);
    const attempts = record?.stageAttempts.filter((row) => row.task === 'pretrain') ?? [];
    // The message names why an unexpected attempt failed (e.g. a heartbeat timeout on a loaded machine).
    expect(attempts.map((row) => [row.attempt, row.status]), JSON.stringify(attempts.map((row) => [row.attempt, row.error]))).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
    expect(attempts[0]?.error).toContain('worker lost');
    expect(attempts[0]?.workerIdentity).not.toBe(attempts[1]?.workerIdentity);
    const resumed = record?.epochMetrics.filter((row) => row.task === 'pretrain' && row.attempt === 2).map((row) => row.epoch) ?? [];
    // The new attempt starts right after the last stored epoch: no stored epoch is trained again,
    // and at most the one epoch in flight at the kill is lost.
    expect(resumed[0]).toBe(stored + 1);
    expect(resumed).toEqual(Array.from({ length: epochs - stored }, (_, i) => stored + 1 + i));
    const firstResumedEpoch = record?.epochMetrics.find((row) => row.task === 'pretrain' && row.attempt === 2);
    // Bounded by the heartbeat timeout (15 s) plus Temporal's first retry interval (5 s) and start-up.
    expect((firstResumedEpoch?.recordedAt.getTime() ?? Infinity) - restartedAt).toBeLessThan(90_000);
  }, 600_000);
});
