import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultTestConfig, sleep, startFaultTestServices, until, type FaultTestServices } from './test-support/fault-services';

// The Temporal dev server (state in a SQLite file, as `detl services` runs it) is stopped and
// started again while a real worker process is pretraining. Workflow and activity state live in the
// file, the worker's pollers reconnect, and the run completes. Training goes on meanwhile, but its
// heartbeats cannot arrive: when the last one delivered (the SDK throttles them to 0.8 x the
// timeout) plus the outage exceeds the heartbeat timeout, Temporal times the attempt out and the
// next attempt resumes from the run record, so at most the epoch in flight is trained twice.
let services: FaultTestServices<'temporal'>;
const DOWN_MS = 10_000;

beforeAll(async () => {
  services = await startFaultTestServices('temporal-restart', 'temporal');
}, 240_000);

afterAll(async () => {
  await services?.stop();
});

describe('Temporal dev server restarted mid-run', () => {
  it('the run completes: state survives in the database file and the worker reconnects', async () => {
    const { tracking, client, fault: temporal } = services;
    // Epochs take about a second here; enough of them that training spans the whole restart.
    const epochs = 30;
    const { workflowId, worker, pretrainEpochs, before } = await services.startRun(faultTestConfig('temporal-restart', epochs));
    const stoppedAt = Date.now();
    await temporal.stop();
    await sleep(DOWN_MS);
    const during = (await pretrainEpochs()).length;
    await temporal.start();
    const downMs = Date.now() - stoppedAt;
    console.log(`Temporal down ${(downMs / 1000).toFixed(1)} s after ${before} of ${epochs} pretraining epochs; epochs recorded while down: ${during - before}`);
    // Training goes on without Temporal (heartbeats failing). On an idle machine it can even finish
    // while the server is down; its completion must then survive the restart, which the rest checks.
    expect(during).toBeGreaterThanOrEqual(before);
    expect(worker.exitCode).toBeNull();

    // The client's channel reconnects too; a call racing the restart is simply asked again.
    const result = await until('the workflow result', 420_000, () =>
      client.workflow
        .getHandle(workflowId)
        .result()
        .catch((error: unknown) => {
          const text = String((error as Error).message ?? error);
          if (/UNAVAILABLE|connect|deadline|transport|socket/i.test(text)) return null;
          throw error;
        }),
    );
    expect(result.folds).toHaveLength(2);

    const record = await tracking.getExperiment(workflowId);
    expect(record?.status).toBe('succeeded');
    const pretrainAttempts = record?.stageAttempts.filter((row) => row.task === 'pretrain') ?? [];
    console.log(`pretrain attempts: ${JSON.stringify(pretrainAttempts.map((row) => [row.attempt, row.status, row.error]))}`);
    expect(pretrainAttempts.at(-1)?.status).toBe('succeeded');
    // An attempt Temporal gave up on is recorded as such, not as a cancellation nobody asked for.
    for (const failed of pretrainAttempts.filter((row) => row.status === 'failed')) expect(failed.error).toMatch(/^(timed out|worker lost): /);
    // Whatever attempt finished pretraining, the run record has every epoch once for it, and no
    // epoch trained twice across attempts beyond the one in flight.
    const finalAttempt = pretrainAttempts.at(-1)?.attempt ?? 1;
    const rows = record?.epochMetrics.filter((row) => row.task === 'pretrain') ?? [];
    const finalEpochs = rows.filter((row) => row.attempt === finalAttempt).map((row) => row.epoch);
    expect(finalEpochs.at(-1)).toBe(epochs);
    const distinct = new Set(rows.map((row) => row.epoch));
    expect([...distinct].sort((a, b) => a - b)).toEqual(Array.from({ length: epochs }, (_, i) => i + 1));
    expect(rows.length - distinct.size).toBeLessThanOrEqual(pretrainAttempts.length - 1);
    expect(worker.exitCode).toBeNull();
  }, 600_000);
});
