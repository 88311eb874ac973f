import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultTestConfig, sleep, startFaultTestServices, type FaultTestServices } from './test-support/fault-services';

// MinIO goes away for 10 s while a real worker process is pretraining, so at least one epoch's
// checkpoint upload meets a refused connection. The worker's object store waits it out
// (withTransientObjectStoreRetries): the run completes without a failed attempt, and every
// artifact row's recorded size and SHA-256 are those of the object in S3.
let services: FaultTestServices<'minio'>;
const OUTAGE_MS = 10_000;

beforeAll(async () => {
  services = await startFaultTestServices('minio-outage', 'minio');
}, 240_000);

afterAll(async () => {
  await services?.stop();
});

describe('MinIO stopped for 10 s mid-upload', () => {
  it('the run completes without a failed attempt and every artifact row matches its object', async () => {
    const { tracking, store, fault: minio } = services;
    const epochs = 10;
    const { workflowId, handle, output, pretrainEpochs, before } = await services.startRun(faultTestConfig('minio-outage', epochs));
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
