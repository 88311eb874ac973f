import type { ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceSettings } from '@detl/config';
import { resolveToolBinary } from '@detl/services';
import { createObjectStore, type S3ObjectStore } from '@detl/storage';
import { createTrackingStore, type TrackingStore } from '@detl/tracking';
import { createTestDatabase, type TestDatabase } from '@detl/tracking/testing';
import { experimentWorkflow } from '@detl/workflows';
import { faultTestConfig, killProcess, sleep, startRestartableMinio, startWorkerProcess, until, type RestartableMinio } from './test-support/fault-services';

// MinIO goes away for 10 s while a real worker process is pretraining, so at least one epoch's
// checkpoint upload meets a refused connection. The worker's object store waits it out
// (withTransientObjectStoreRetries): the run completes without a failed attempt, and every
// artifact row's recorded size and SHA-256 are those of the object in S3.
let env: TestWorkflowEnvironment;
let minio: RestartableMinio;
let database: TestDatabase;
let tracking: TrackingStore;
let store: S3ObjectStore;
let home: string;
let worker: ChildProcess | undefined;
const OUTAGE_MS = 10_000;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'detl-minio-outage-'));
  [env, minio, database] = await Promise.all([
    TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: resolveToolBinary('temporal') }, ip: '127.0.0.1' } }),
    startRestartableMinio(`minio-outage-${randomUUID().slice(0, 8)}`),
    createTestDatabase(),
  ]);
  tracking = createTrackingStore(database.url);
  store = createObjectStore(minio.settings);
  await store.ensureBucket();
}, 240_000);

afterAll(async () => {
  await killProcess(worker);
  await tracking?.close();
  store?.close();
  await Promise.allSettled([env?.teardown(), minio?.destroy(), database?.drop()]);
  if (home) await rm(home, { recursive: true, force: true });
});

describe('MinIO stopped for 10 s mid-upload', () => {
  it('the run completes without a failed attempt and every artifact row matches its object', async () => {
    const settings: ServiceSettings = {
      home,
      temporal: { address: env.address, namespace: 'default', taskQueue: `minio-outage-${randomUUID()}` },
      databaseUrl: database.url,
      s3: minio.settings,
    };
    const epochs = 10;
    const config = faultTestConfig('minio-outage', epochs);
    const output: string[] = [];
    worker = startWorkerProcess(settings, output);
    const workflowId = `minio-outage-${randomUUID()}`;
    const handle = await env.client.workflow.start(experimentWorkflow, { taskQueue: settings.temporal.taskQueue, workflowId, args: [{ config }] });

    const pretrainEpochs = async () => (await tracking.getExperiment(workflowId))?.epochMetrics.filter((row) => row.task === 'pretrain') ?? [];
    await until('two pretraining epochs', 240_000, async () => ((await pretrainEpochs()).length >= 2 ? true : null));
    const before = (await pretrainEpochs()).length;
    const stoppedAt = Date.now();
    await minio.stop();
    await sleep(OUTAGE_MS);
    const during = (await pretrainEpochs()).length;
    await minio.start();
    console.log(`MinIO down ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s after ${before} of ${epochs} pretraining epochs; epochs recorded while down: ${during - before}`);

    const result = await handle.result();
    expect(result.folds).toHaveLength(2);

    const record = await tracking.getExperiment(workflowId);
    expect(record?.status).toBe('succeeded');
    expect(record?.stageAttempts.every((row) => row.attempt === 1 && row.status === 'succeeded')).toBe(true);
    const pretrain = record?.epochMetrics.filter((row) => row.task === 'pretrain') ?? [];
    expect(pretrain.map((row) => row.epoch)).toEqual(Array.from({ length: epochs }, (_, i) => i + 1));

    // Every artifact row describes the object S3 holds: same size, same SHA-256.
    const artifacts = record?.artifacts ?? [];
    expect(artifacts.filter((row) => row.kind === 'checkpoint').length).toBeGreaterThanOrEqual(2 * epochs);
    for (const artifact of artifacts) {
      const bytes = await store.getObject(artifact.key);
      expect({ key: artifact.key, size: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') }).toEqual({
        key: artifact.key,
        size: artifact.sizeBytes,
        sha256: artifact.sha256,
      });
    }
    // The upload that met the outage was retried inside the activity, and said so.
    const retries = output.filter((line) => /^s3\.\w+ \S+ failed \(.*\); retry \d+ in /.test(line));
    const recoveries = output.filter((line) => /^s3\.\w+ \S+ succeeded after \d+ retr/.test(line));
    console.log(`worker retry lines: ${retries.length}, first: ${retries[0]}; recoveries: ${recoveries.join(' | ')}; artifacts checked: ${artifacts.length}`);
    expect(retries.length).toBeGreaterThan(0);
    expect(recoveries.length).toBeGreaterThan(0);
    expect(output.some((line) => /giving up/.test(line))).toBe(false);
  }, 600_000);
});
