import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killProcess, startTestServices, startWorkerProcess, trainingChildren, until, type TestServices } from '@detl/activities/testing';
import { serviceEnvironment } from '@detl/config';
import { createSweepStore, type SweepDetail, type SweepStore, type TrackingStore } from '@detl/tracking';
import { runDetl } from '../test-support/run-detl';

// A sweep of four tiny experiments, launched with `detl sweep launch` and run by a real worker
// process: every experiment runs as a child workflow, is linked to the sweep in PostgreSQL, the
// pretraining is done once per seed and reused by the experiment that differs only in fine-tuning,
// the sampling is reused too. Then a second sweep is cancelled while it trains.
let services: TestServices;
let tracking: TrackingStore;
let sweeps: SweepStore;
let work: string;
let cliEnv: NodeJS.ProcessEnv;
let worker: ChildProcess | undefined;

const tiny = {
  dataset: { source: { kind: 'synthetic', imagesPerClass: 6, pretrainImagesPerClass: 24 }, imageSize: 32, folds: 2 },
  model: { architecture: 'small-vgg', widthMultiplier: 0.5 },
  pretrain: { epochs: 1, batchSize: 8 },
  fineTune: { epochs: 1, batchSize: 8 },
  gradCam: { imagesPerClass: 0 },
  runtime: { backend: 'wasm', heartbeatTimeoutSeconds: 15 },
};

beforeAll(async () => {
  services = await startTestServices('sweep');
  ({ tracking, home: work } = services);
  sweeps = createSweepStore(services.databaseUrl);
  // The CLI's home is a folder of its own beside the sweep files the tests write.
  const settings = { ...services.settings(), home: path.join(work, 'home') };
  cliEnv = { ...process.env, ...serviceEnvironment(settings) };
  worker = startWorkerProcess({ main: require.resolve('@detl/worker/main'), settings });
}, 240_000);

afterAll(async () => {
  await killProcess(worker);
  await sweeps?.close();
  await services?.stop();
});

describe('detl sweep', () => {
  it('refuses a sweep with a bad experiment before starting anything, naming its index and path (exit 2)', async () => {
    const file = path.join(work, 'bad.yaml');
    await writeFile(file, 'name: bad\nbase:\n  pretrain: { epochs: 1 }\ngrid:\n  fineTune.freeze: [none, frozen-ish]\n  seed: [1]\n');
    const result = await runDetl(['sweep', 'launch', '-c', file], { env: cliEnv, cwd: work });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('sweep bad: 1 of 2 experiments are invalid; nothing was started');
    expect(result.stderr).toContain('experiment 1 (fineTune.freeze="frozen-ish", seed=1)');
    expect(result.stderr).toContain('fineTune.freeze:');
    expect((await sweeps.listSweeps()).length).toBe(0);
  });

  it('runs four experiments as child workflows, linked in PostgreSQL, sharing sampling and pretraining', async () => {
    const file = path.join(work, 'four.json');
    await writeFile(file, JSON.stringify({ name: 'four', base: tiny, concurrency: 2, grid: { seed: [3, 4], 'fineTune.learningRate': [0.001, 0.01] } }));
    const launch = await runDetl(['sweep', 'launch', '-c', file, '--no-worker', '--json'], { env: cliEnv, cwd: work, timeoutMs: 900_000 });
    expect(launch.stderr).toBe('');
    expect(launch.code).toBe(0);
    const launched = JSON.parse(launch.stdout) as SweepDetail;
    expect(launched.status).toBe('succeeded');
    expect(launched.experiments.map((e) => e.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);

    // Linked in PostgreSQL: each experiment row points at the sweep, with its index.
    const sweep = await sweeps.getSweep(launched.id);
    expect(sweep?.experiments.map((e) => [e.index, e.overrides])).toEqual([
      [0, { seed: 3, 'fineTune.learningRate': 0.001 }],
      [1, { seed: 3, 'fineTune.learningRate': 0.01 }],
      [2, { seed: 4, 'fineTune.learningRate': 0.001 }],
      [3, { seed: 4, 'fineTune.learningRate': 0.01 }],
    ]);
    const records = await Promise.all((sweep?.experiments ?? []).map((e) => tracking.getExperiment(e.experimentId ?? '')));
    expect(records.map((r) => r?.config.fineTune.learningRate)).toEqual([0.001, 0.01, 0.001, 0.01]);
    expect(records.map((r) => r?.name)).toEqual(['four-0', 'four-1', 'four-2', 'four-3']);

    // One pretraining per seed: experiments 1 and 3 differ from 0 and 2 only in fine-tuning.
    const tasks = records.map((r) => [...new Set(r?.stageAttempts.map((a) => a.task))].sort());
    expect(tasks.map((t) => t.includes('pretrain'))).toEqual([true, false, true, false]);
    expect(tasks[1]).toEqual(['aggregate', 'fold-0', 'fold-1', 'grad-cam', 'sample']);
    // Same seed, same sampling: the manifest is the same object and no shard is written again.
    expect(records[1]?.datasetManifestKey).toBe(records[0]?.datasetManifestKey);
    expect(records[1]?.stageAttempts.find((a) => a.task === 'sample')?.details).toMatchObject({ shardsWritten: 0 });

    // status sorts by mean fold accuracy; list shows the sweep with its counts.
    const [status, list, table] = await Promise.all([
      runDetl(['sweep', 'status', launched.id.slice(0, 8), '--json'], { env: cliEnv, cwd: work }),
      runDetl(['sweep', 'list', '--json'], { env: cliEnv, cwd: work }),
      runDetl(['sweep', 'status', launched.id], { env: cliEnv, cwd: work }),
    ]);
    const ranked = (JSON.parse(status.stdout) as SweepDetail).experiments.map((e) => e.summary?.meanAccuracy ?? -1);
    expect(ranked).toEqual([...ranked].sort((a, b) => b - a));
    expect(JSON.parse(list.stdout)).toMatchObject([{ id: launched.id, status: 'succeeded', counts: { succeeded: 4, pending: 0 } }]);
    expect(table.stdout).toContain('accuracy (mean ± std)');
    expect(table.stdout.match(/ reused /g)).toHaveLength(2);

    // The report: one row per variant (the seeds pooled), and a PNG chart.
    const chart = path.join(work, 'four.png');
    const report = await runDetl(['sweep', 'report', launched.id, '--json', '-o', chart], { env: cliEnv, cwd: work });
    expect(report.stderr).toBe('');
    const reported = JSON.parse(report.stdout) as { variants: Array<{ label: string; runAccuracies: number[]; mean: number; std: number }>; chart: string };
    expect(reported.variants.map((v) => v.label).sort()).toEqual(['fineTune.learningRate=0.001', 'fineTune.learningRate=0.01']);
    for (const variant of reported.variants) {
      expect(variant.runAccuracies).toHaveLength(2);
      expect(variant.mean).toBeCloseTo((variant.runAccuracies[0]! + variant.runAccuracies[1]!) / 2, 10);
    }
    expect(reported.chart).toBe(chart);
    expect(readFileSync(chart).subarray(1, 4).toString()).toBe('PNG');
    const markdown = await runDetl(['sweep', 'report', launched.id.slice(0, 8), '-o', chart], { env: cliEnv, cwd: work });
    expect(markdown.stdout).toContain('| variant | runs | accuracy over seeds (mean ± std) |');
    expect(markdown.stdout).toContain('| fineTune.learningRate=0.01 | 2 |');
  }, 900_000);

  it('sweep cancel stops the running experiments, records them and the sweep as cancelled, and starts no more', async () => {
    const file = path.join(work, 'long.json');
    await writeFile(file, JSON.stringify({ name: 'long', base: { ...tiny, pretrain: { epochs: 200, batchSize: 8 } }, concurrency: 1, list: [{ seed: 1 }, { seed: 2 }, { seed: 3 }] }));
    const launch = await runDetl(['sweep', 'launch', '-c', file, '--detach', '--json'], { env: cliEnv, cwd: work });
    expect(launch.code).toBe(0);
    const { sweepId } = JSON.parse(launch.stdout) as { sweepId: string };
    const workerPid = worker?.pid ?? -1;
    await until('a training to start', 240_000, () => (trainingChildren(workerPid).length > 0 ? true : null));
    // A live table while it runs; it ends by itself once the sweep has ended.
    const watch = runDetl(['sweep', 'status', sweepId, '--watch', '1'], { env: cliEnv, cwd: work, timeoutMs: 180_000 });
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const cancel = await runDetl(['sweep', 'cancel', sweepId.slice(0, 8), '--json'], { env: cliEnv, cwd: work, timeoutMs: 180_000 });
    expect(cancel.stderr).toBe('');
    expect(cancel.code).toBe(0);
    expect(JSON.parse(cancel.stdout)).toMatchObject({
      id: sweepId,
      status: 'cancelled',
      experiments: [
        { index: 0, status: 'cancelled' },
        { index: 1, status: 'pending', experimentId: null },
        { index: 2, status: 'pending', experimentId: null },
      ],
    });
    // The training child is gone within one heartbeat interval of the sweep being recorded cancelled.
    const gone = Date.now() + 20_000;
    while (trainingChildren(workerPid).length > 0 && Date.now() < gone) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(trainingChildren(workerPid)).toEqual([]);
    const sweep = await sweeps.getSweep(sweepId);
    expect(sweep?.status).toBe('cancelled');
    const watched = await watch;
    expect(watched.code).toBe(0);
    expect(watched.stdout).toMatch(/status {3}running/);
    expect(watched.stdout.trimEnd()).toMatch(/status {3}cancelled[\s\S]*$/);
    const first = await tracking.getExperiment(sweep?.experiments[0]?.experimentId ?? '');
    expect(first?.status).toBe('cancelled');
    expect(first?.stageAttempts.filter((a) => a.status === 'running')).toEqual([]);
  }, 600_000);
});
