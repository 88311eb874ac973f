import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExperimentConfig, serviceEnvironment, type ServiceSettings } from '@detl/config';
import { resolveToolBinary } from '@detl/services';
import { startTestMinio } from '@detl/services/testing';
import { createObjectStore, type S3ObjectStore } from '@detl/storage';
import { createTrackingStore, type TrackingStore } from '@detl/tracking';
import { createTestDatabase, type TestDatabase } from '@detl/tracking/testing';
import { experimentWorkflow } from '@detl/workflows';
import { runDetl } from '../test-support/run-detl';

// `detl runs cancel` against a real worker process whose pretraining runs in a training child: the
// training must stop (child gone) within one heartbeat interval, the run must be recorded as
// cancelled, and nothing may keep training afterwards.
let env: TestWorkflowEnvironment;
let minio: Awaited<ReturnType<typeof startTestMinio>>;
let database: TestDatabase;
let tracking: TrackingStore;
let store: S3ObjectStore;
let home: string;
let worker: ChildProcess | undefined;

const WORKER_MAIN = require.resolve('@detl/worker/main');
const TSX_LOADER = pathToFileURL(createRequire(WORKER_MAIN).resolve('tsx')).href;
const HEARTBEAT_TIMEOUT_SECONDS = 15;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'detl-cancel-'));
  [env, minio, database] = await Promise.all([
    TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: resolveToolBinary('temporal') }, ip: '127.0.0.1' } }),
    startTestMinio(),
    createTestDatabase(),
  ]);
  tracking = createTrackingStore(database.url);
  store = createObjectStore({ ...minio.settings, bucket: `cancel-${randomUUID().slice(0, 8)}` });
  await store.ensureBucket();
}, 240_000);

afterAll(async () => {
  if (worker && worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
  await tracking?.close();
  await Promise.allSettled([env?.teardown(), minio?.stop(), database?.drop()]);
  if (home) await rm(home, { recursive: true, force: true });
});

/** Pids of the training children (training-child-entry.ts) below `pid`, from /proc. */
function trainingChildren(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('training-child-entry')) found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined> | T | null | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('detl runs cancel', () => {
  it('stops the running training within one heartbeat interval, kills its child and records the run as cancelled', async () => {
    const settings: ServiceSettings = {
      home,
      temporal: { address: env.address, namespace: 'default', taskQueue: `cancel-${randomUUID()}` },
      databaseUrl: database.url,
      s3: { ...minio.settings, bucket: store.bucket },
    };
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
    worker = spawn(process.execPath, ['--import', TSX_LOADER, WORKER_MAIN], { env: { ...cliEnv, DETL_WORKER_SLOTS: '2' }, stdio: ['ignore', 'ignore', 'pipe'] });
    worker.stderr?.on('data', () => undefined);
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
    const watcher = until('the training child to end', 120_000, () => (trainingChildren(workerPid).length === 0 ? (childGoneAfterMs = Date.now() - requestedAt) : null));
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
