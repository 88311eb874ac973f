import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killProcess, startTestServices, startWorkerProcess, trainingChildren, until, type TestServices } from '@detl/activities/testing';
import { parseExperimentConfig, serviceEnvironment } from '@detl/config';
import { experimentWorkflow } from '@detl/workflows';
import { runDetl } from '../test-support/run-detl';

// `detl runs cancel` against a real worker process whose pretraining runs in a training child: the
// training must stop (child gone) within one heartbeat interval, the run must be recorded as
// cancelled, and nothing may keep training afterwards.
let services: TestServices;
let worker: ChildProcess | undefined;

const HEARTBEAT_TIMEOUT_SECONDS = 15;

beforeAll(async () => {
  services = await startTestServices('cancel');
}, 240_000);

afterAll(async () => {
  await killProcess(worker);
  await services?.stop();
});

describe('detl runs cancel', () => {
  it('stops the running training within one heartbeat interval, kills its child and records the run as cancelled', async () => {
    const settings = services.settings();
    const { env, tracking, home } = services;
    const config = parseExperimentConfig({
      name: 'cancel-test',
      seed: 3,
      dataset: { source: { kind: 'synthetic', imagesPerClass: 6, pretrainImagesPerClass: 60 }, imageSize: 32, folds: 2 },
      model: { architecture: 'small-vgg', widthMultiplier: 0.5 },
      pretrain: { epochs: 200, batchSize: 8 },
      fineTune: { epochs: 1, batchSize: 8 },
      gradCam: { imagesPerClass: 0 },
      runtime: { heartbeatTimeoutSeconds: HEARTBEAT_TIMEOUT_SECONDS },
    });
    const cliEnv = { ...process.env, ...serviceEnvironment(settings) };
    worker = startWorkerProcess({ main: require.resolve('@detl/worker/main'), settings });
    const workerPid = worker.pid ?? -1;
    const workflowId = `cancel-${randomUUID()}`;
    const handle = await env.client.workflow.start(experimentWorkflow, { taskQueue: settings.temporal.taskQueue, workflowId, args: [{ config }] });

    const pretrainEpochs = async () => (await tracking.getExperiment(workflowId))?.epochMetrics.filter((row) => row.task === 'pretrain').length ?? 0;
    await until('a pretraining epoch', 240_000, async () => ((await pretrainEpochs()) >= 1 ? true : null));
    const children = trainingChildren(workerPid);
    expect(children).toHaveLength(1);
    const experiment = await tracking.getExperiment(workflowId);
    expect(experiment?.status).toBe('running');

    // Watch the training child from the moment the cancellation is asked for.
    const requestedAt = Date.now();
    let childGoneAfterMs: number | null = null;
    // Polled every 100 ms: the time it measures is held to a bound.
    const watcher = until('the training child to end', 120_000, () => (trainingChildren(workerPid).length === 0 ? (childGoneAfterMs = Date.now() - requestedAt) : null), 100);
    const cancel = await runDetl(['runs', 'cancel', (experiment?.id ?? '').slice(0, 8), '--json'], { env: cliEnv, cwd: home, timeoutMs: 120_000 });
    expect(cancel.stderr).toBe('');
    expect(cancel.code).toBe(0);
    expect(JSON.parse(cancel.stdout)).toMatchObject({ id: experiment?.id, workflowId, status: 'cancelled' });
    await watcher;
    console.log(`training child gone ${childGoneAfterMs} ms after the cancellation was requested`);
    // One heartbeat interval (the heartbeat timeout) plus the CLI's own start-up.
    expect(childGoneAfterMs).toBeLessThan((HEARTBEAT_TIMEOUT_SECONDS + 10) * 1000);

    const failure = await handle.result().then(() => null, (error: unknown) => error);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(((failure as WorkflowFailedError).cause as Error | undefined)?.name).toBe('CancelledFailure');

    // Nothing keeps training: no epoch is recorded after the cancellation, the attempt has ended,
    // the worker itself lives on, and it has no training child.
    const epochsAtCancel = await pretrainEpochs();
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    expect(await pretrainEpochs()).toBe(epochsAtCancel);
    const record = await tracking.getExperiment(workflowId);
    expect(record?.status).toBe('cancelled');
    expect(record?.stageAttempts.filter((row) => row.status === 'running')).toEqual([]);
    expect(record?.stageAttempts.find((row) => row.task === 'pretrain')?.error).toMatch(/cancel/i);
    expect(worker.exitCode).toBeNull();
    expect(trainingChildren(workerPid)).toEqual([]);
    for (const pid of children) expect(() => process.kill(pid, 0)).toThrow();

    // A finished run cannot be cancelled again.
    const again = await runDetl(['runs', 'cancel', experiment?.id ?? ''], { env: cliEnv, cwd: home, timeoutMs: 60_000 });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('has already been cancelled');
  }, 600_000);
});
