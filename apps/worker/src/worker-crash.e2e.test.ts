import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExperimentConfig, serviceEnvironment, type ServiceSettings } from '@detl/config';
import { resolveToolBinary, startTestMinio } from '@detl/services';
import { createObjectStore, type S3ObjectStore } from '@detl/storage';
import { createTrackingStore, createTestDatabase, type TestDatabase, type TrackingStore } from '@detl/tracking';
import { experimentWorkflow } from '@detl/workflows';

// Durability is claimed for a worker that dies without any chance to clean up, so the worker here
// is the real process (apps/worker/src/main.ts) and it gets SIGKILL mid-pretraining; a second
// worker process must carry the run on from the last stored epoch, losing at most one epoch.
let env: TestWorkflowEnvironment;
let minio: Awaited<ReturnType<typeof startTestMinio>>;
let database: TestDatabase;
let tracking: TrackingStore;
let store: S3ObjectStore;
let home: string;
const workers: ChildProcess[] = [];

const WORKER_MAIN = path.join(__dirname, 'main.ts');
const TSX_LOADER = pathToFileURL(createRequire(WORKER_MAIN).resolve('tsx')).href;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'detl-crash-'));
  [env, minio, database] = await Promise.all([
    TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: resolveToolBinary('temporal') }, ip: '127.0.0.1' } }),
    startTestMinio(),
    createTestDatabase(),
  ]);
  tracking = createTrackingStore(database.url);
  store = createObjectStore({ ...minio.settings, bucket: `crash-${randomUUID().slice(0, 8)}` });
  await store.ensureBucket();
}, 240_000);

afterAll(async () => {
  for (const worker of workers) if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
  await tracking?.close();
  await Promise.allSettled([env?.teardown(), minio?.stop(), database?.drop()]);
  if (home) await rm(home, { recursive: true, force: true });
});

function startWorker(settings: ServiceSettings): ChildProcess {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, WORKER_MAIN], {
    env: { ...process.env, ...serviceEnvironment(settings), DETL_WORKER_SLOTS: '2' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', () => undefined);
  workers.push(child);
  return child;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('a worker killed with SIGKILL mid-pretraining', () => {
  it('costs at most one epoch: a new worker process resumes from the last stored checkpoint and the dead attempt is recorded as failed', async () => {
    const settings: ServiceSettings = {
      home,
      temporal: { address: env.address, namespace: 'default', taskQueue: `crash-${randomUUID()}` },
      databaseUrl: database.url,
      s3: { ...minio.settings, bucket: store.bucket },
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
    const first = startWorker(settings);
    const workflowId = `crash-${randomUUID()}`;
    const handle = await env.client.workflow.start(experimentWorkflow, { taskQueue: settings.temporal.taskQueue, workflowId, args: [{ config }] });

    const pretrainEpochs = async () => (await tracking.getExperiment(workflowId))?.epochMetrics.filter((row) => row.task === 'pretrain') ?? [];
    await until('two pretraining epochs', 180_000, async () => ((await pretrainEpochs()).length >= 2 ? true : null));
    first.kill('SIGKILL');
    await new Promise<void>((resolve) => (first.exitCode !== null || first.signalCode !== null ? resolve() : first.once('exit', () => resolve())));
    // What survived the kill: every epoch whose checkpoint and row were stored.
    const stored = Math.max(...(await pretrainEpochs()).map((row) => row.epoch));
    expect(stored).toBeLessThan(epochs);

    const restartedAt = Date.now();
    startWorker(settings);
    const result = await handle.result();
    expect(result.folds).toHaveLength(2);

    const record = await tracking.getExperiment(workflowId);
    const attempts = record?.stageAttempts.filter((row) => row.task === 'pretrain') ?? [];
    expect(attempts.map((row) => [row.attempt, row.status])).toEqual([
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
  }, 420_000);
});
