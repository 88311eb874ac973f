import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultTestConfig, sleep, startFaultTestServices, type FaultTestServices } from './test-support/fault-services';

// PostgreSQL goes away for 10 s while a real worker process is pretraining. The worker's tracking
// writes wait it out (withTransientRetries), so the training activity is not failed and retried:
// the run completes with one attempt per task and exactly one epoch row per (task, epoch).
let services: FaultTestServices<'postgres'>;
const OUTAGE_MS = 10_000;

beforeAll(async () => {
  services = await startFaultTestServices('pg-outage', 'postgres');
}, 240_000);

afterAll(async () => {
  await services?.stop();
});

describe('PostgreSQL stopped for 10 s mid-run', () => {
  it('the run completes; the training attempt survives and every (task, epoch) has exactly one row', async () => {
    const { tracking, fault: postgres } = services;
    const epochs = 10;
    const { workflowId, handle, output, before } = await services.startRun(faultTestConfig('pg-outage', epochs));
    const stoppedAt = Date.now();
    await postgres.stop();
    await sleep(OUTAGE_MS);
    await postgres.start();
    const downMs = Date.now() - stoppedAt;
    console.log(`${postgres.engine} down ${(downMs / 1000).toFixed(1)} s after ${before} of ${epochs} pretraining epochs`);

    const result = await handle.result();
    expect(result.folds).toHaveLength(2);

    const record = await tracking.getExperiment(workflowId);
    expect(record?.status).toBe('succeeded');
    // No activity failed for the outage: the retries happened inside the attempts.
    expect(record?.stageAttempts.map((row) => [row.task, row.attempt, row.status])).toEqual(
      expect.arrayContaining([
        ['pretrain', 1, 'succeeded'],
        ['fold-0', 1, 'succeeded'],
        ['fold-1', 1, 'succeeded'],
      ]),
    );
    expect(record?.stageAttempts.every((row) => row.attempt === 1 && row.status === 'succeeded')).toBe(true);
    // Exactly one row per (task, epoch), all of the final (only) attempt: nothing lost, nothing twice.
    for (const [task, count] of [
      ['pretrain', epochs],
      ['fold-0', 2],
      ['fold-1', 2],
    ] as const) {
      const rows = record?.epochMetrics.filter((row) => row.task === task) ?? [];
      expect(rows.map((row) => [row.attempt, row.epoch])).toEqual(Array.from({ length: count }, (_, i) => [1, i + 1]));
      expect(rows.every((row) => row.checkpointKey !== null)).toBe(true);
    }
    // Every stored checkpoint has its artifact rows.
    const checkpointRows = new Set(record?.artifacts.filter((row) => row.kind === 'checkpoint').map((row) => row.key));
    for (const row of record?.epochMetrics ?? []) {
      expect([...checkpointRows].some((key) => key.startsWith(`${row.checkpointKey}/`))).toBe(true);
    }
    // The worker did wait the outage out, and said so once per retry.
    const retries = output.filter((line) => /^tracking\.\w+ failed \(.*\); retry \d+ in /.test(line));
    const recoveries = output.filter((line) => /^tracking\.\w+ succeeded after \d+ retr/.test(line));
    console.log(`worker retry lines: ${retries.length}, first: ${retries[0]}; recoveries: ${recoveries.join(' | ')}`);
    expect(retries.length).toBeGreaterThan(0);
    expect(recoveries.length).toBeGreaterThan(0);
    expect(output.some((line) => /giving up/.test(line))).toBe(false);
  }, 600_000);
});
