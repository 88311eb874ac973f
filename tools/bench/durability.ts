import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { parseExperimentConfig, serviceEnvironment, type ExperimentConfig, type ServiceSettings } from '@detl/config';
import { resolveToolBinary } from '@detl/services';
import { startTestMinio } from '@detl/services/testing';
import { createObjectStore, downloadPrefix, uploadDirectory } from '@detl/storage';
import { createTrackingStore, type ExperimentDetail, type StageAttemptRecord, type TrackingStore } from '@detl/tracking';
import { createTestDatabase } from '@detl/tracking/testing';
import { experimentWorkflow } from '@detl/workflows';

// The worker as the real process it is in production: a path, since tools do not import apps.
const WORKER_MAIN = path.resolve(__dirname, '../../apps/worker/src/main.ts');
const TSX_LOADER = pathToFileURL(createRequire(WORKER_MAIN).resolve('tsx')).href;

/** The fault tests' small experiment (apps/worker/src/test-support/fault-services.ts): epochs of seconds. */
function benchConfig(pretrainEpochs: number, heartbeatTimeoutSeconds: number): ExperimentConfig {
  return parseExperimentConfig({
    name: 'durability-bench',
    seed: 5,
    dataset: { source: { kind: 'synthetic', imagesPerClass: 6, pretrainImagesPerClass: 80 }, imageSize: 32, folds: 2 },
    model: { architecture: 'small-vgg', widthMultiplier: 0.5 },
    pretrain: { epochs: pretrainEpochs, batchSize: 8 },
    fineTune: { epochs: 2, batchSize: 8 },
    gradCam: { imagesPerClass: 0 },
    runtime: { heartbeatTimeoutSeconds },
  });
}

/** A worker process; `polling` resolves once it polls (its workflow bundle built), which takes seconds. */
function startWorkerProcess(settings: ServiceSettings): { child: ChildProcess; polling: Promise<void> } {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, WORKER_MAIN], {
    env: { ...process.env, ...serviceEnvironment(settings), DETL_WORKER_SLOTS: '2' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const polling = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the worker exited with ${code} before polling`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString('utf8').includes('polling task queue')) resolve();
    });
  });
  polling.catch(() => undefined);
  return { child, polling };
}

async function killProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * `npm run bench -- durability [--epochs=12] [--kill-after=3] [--heartbeat-timeout=15] [--bookkeeping-samples=20]`
 *
 * Durability costs of a real worker process on real services (the Temporal dev server of
 * `@temporalio/testing`, MinIO, PostgreSQL: `DETL_TEST_DATABASE_URL` or the embedded PGlite):
 *
 * - **SIGKILL**: a run whose worker gets SIGKILL half an epoch after `--kill-after` stored
 *   pretraining epochs, then a new worker process. Epochs lost = stored epochs trained again by the new attempt (the
 *   run record is the resume point, so 0 is expected) plus the in-flight epoch's share of work
 *   (time since the last stored epoch ÷ mean epoch time). Seconds from the new worker's start to
 *   its attempt starting and to its first resumed epoch being recorded; the heartbeat timeout
 *   (`runtime.heartbeatTimeoutSeconds`) bounds how soon Temporal gives the dead attempt up.
 * - **Overhead**, from an uninterrupted run: (a) orchestration, the time no activity ran between
 *   launch and the run's end (workflow tasks, scheduling, polling); (b) per-epoch bookkeeping, the
 *   upload of a real checkpoint + its artifact rows + the epoch row, timed here against the same
 *   services; each as a share of the run's summed epoch compute (`durationMs` of every epoch row).
 *   In the worker the bookkeeping of epoch n overlaps epoch n+1's compute in the training child,
 *   so its wall-clock share is at most (b).
 * - **Launch to first activity**: `workflow.start` → the run record created by the first activity,
 *   and → the first stage attempt's start.
 */
export default async function durability(args: string[]): Promise<Record<string, unknown>> {
  const options = { epochs: 12, killAfter: 3, heartbeatTimeout: 15, bookkeepingSamples: 20 };
  for (const arg of args) {
    const [key, value = ''] = arg.replace(/^--/, '').split('=', 2) as [string, string?];
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${key} needs a positive integer, got "${value}"`);
    if (key === 'epochs') options.epochs = n;
    else if (key === 'kill-after') options.killAfter = n;
    else if (key === 'heartbeat-timeout') options.heartbeatTimeout = n;
    else if (key === 'bookkeeping-samples') options.bookkeepingSamples = n;
    else throw new Error(`unknown argument ${arg}`);
  }
  if (options.killAfter >= options.epochs) throw new Error('--kill-after must be below --epochs');

  const loadAtStart = os.loadavg();
  const home = await mkdtemp(path.join(os.tmpdir(), 'detl-bench-durability-'));
  const [env, minio, database] = await Promise.all([
    TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: resolveToolBinary('temporal') }, ip: '127.0.0.1' } }),
    startTestMinio(),
    createTestDatabase(),
  ]);
  const tracking = createTrackingStore(database.url);
  const store = createObjectStore({ ...minio.settings, bucket: `durability-${randomUUID().slice(0, 8)}` });
  const workers: ChildProcess[] = [];
  try {
    await store.ensureBucket();
    const settings = (queue: string): ServiceSettings => ({
      home,
      temporal: { address: env.address, namespace: 'default', taskQueue: queue },
      databaseUrl: database.url,
      s3: { ...minio.settings, bucket: store.bucket },
    });
    const config = benchConfig(options.epochs, options.heartbeatTimeout);

    // Uninterrupted run: launch latency and overhead.
    const plain = settings(`durability-plain-${randomUUID()}`);
    const plainWorker = startWorkerProcess(plain);
    workers.push(plainWorker.child);
    // The worker is up (polling) before the launch is timed, as a worker fleet would be.
    await plainWorker.polling;
    const plainId = `durability-plain-${randomUUID()}`;
    const launchedAt = Date.now();
    const plainHandle = await env.client.workflow.start(experimentWorkflow, { taskQueue: plain.temporal.taskQueue, workflowId: plainId, args: [{ config }] });
    const registered = await until('the run record', 60_000, () => tracking.getExperiment(plainId));
    await plainHandle.result();
    const plainRecord = await requireExperiment(tracking, plainId);
    const firstAttempt = [...plainRecord.stageAttempts].sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime())[0];
    const epochComputeMs = plainRecord.epochMetrics.reduce((sum, row) => sum + row.durationMs, 0);
    // From the first activity on: the launch is measured on its own below.
    const idleMs = idleBetweenActivities(plainRecord.stageAttempts, firstAttempt?.startedAt.getTime() ?? launchedAt, plainRecord.finishedAt?.getTime() ?? Date.now());
    const pretrainRows = plainRecord.epochMetrics.filter((row) => row.task === 'pretrain');
    const meanEpochMs = pretrainRows.reduce((sum, row) => sum + row.durationMs, 0) / Math.max(1, pretrainRows.length);
    const bookkeeping = await timeBookkeeping(tracking, store, plainRecord, options.bookkeepingSamples, home);
    // The same worker again, now warm (workflow code loaded, connections open): each launch waits
    // for its run record, then the run is terminated.
    const warmLaunchMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const id = `durability-warm-${randomUUID()}`;
      const started = Date.now();
      const handle = await env.client.workflow.start(experimentWorkflow, { taskQueue: plain.temporal.taskQueue, workflowId: id, args: [{ config }] });
      const record = await until('the warm run record', 60_000, () => tracking.getExperiment(id));
      warmLaunchMs.push(record.createdAt.getTime() - started);
      await handle.terminate('durability bench: launch latency only');
    }
    await Promise.all(workers.splice(0).map((worker) => killProcess(worker)));

    // SIGKILL run.
    const crash = settings(`durability-crash-${randomUUID()}`);
    const firstWorker = startWorkerProcess(crash);
    const first = firstWorker.child;
    workers.push(first);
    await firstWorker.polling;
    const crashId = `durability-crash-${randomUUID()}`;
    const crashHandle = await env.client.workflow.start(experimentWorkflow, { taskQueue: crash.temporal.taskQueue, workflowId: crashId, args: [{ config }] });
    const storedRows = async () => (await tracking.getExperiment(crashId))?.epochMetrics.filter((row) => row.task === 'pretrain') ?? [];
    const beforeKill = await until(`${options.killAfter} stored pretraining epochs`, 300_000, async () => {
      const rows = await storedRows();
      return rows.length >= options.killAfter ? rows : null;
    });
    // Half an epoch later: a kill lands anywhere in an epoch, so its expected loss is half of one.
    await new Promise((resolve) => setTimeout(resolve, beforeKill.reduce((sum, row) => sum + row.durationMs, 0) / beforeKill.length / 2));
    await killProcess(first);
    const killedAt = Date.now();
    // The run record may have gained an epoch in that half epoch.
    const stored = await storedRows();
    const lastStored = stored.reduce((max, row) => Math.max(max, row.epoch), 0);
    const lastStoredAt = Math.max(...stored.map((row) => row.recordedAt.getTime()));
    const restartedAt = Date.now();
    const second = startWorkerProcess(crash);
    workers.push(second.child);
    await second.polling;
    const pollingAt = Date.now();
    await crashHandle.result();
    const crashRecord = await requireExperiment(tracking, crashId);
    const attempts = crashRecord.stageAttempts.filter((row) => row.task === 'pretrain').sort((a, b) => a.attempt - b.attempt);
    const resumedAttempt = attempts.at(-1);
    const resumedRows = crashRecord.epochMetrics.filter((row) => row.task === 'pretrain' && row.attempt === resumedAttempt?.attempt).sort((a, b) => a.epoch - b.epoch);
    const firstResumed = resumedRows[0];
    const seconds = (ms: number) => Math.round(ms / 10) / 100;

    return {
      options,
      // run.ts samples the load after the benchmark; these bracket it.
      loadAverage: { atStart: loadAtStart, atEnd: os.loadavg() },
      database: database.engine,
      sigkill: {
        killedAfterStoredEpochs: lastStored,
        attempts: attempts.map((row) => ({ attempt: row.attempt, status: row.status, error: row.error })),
        storedEpochsTrainedAgain: resumedRows.filter((row) => row.epoch <= lastStored).length,
        firstResumedEpoch: firstResumed?.epoch ?? null,
        inFlightSecondsLost: seconds(killedAt - lastStoredAt),
        inFlightEpochFractionLost: Math.round(((killedAt - lastStoredAt) / meanEpochMs) * 100) / 100,
        epochsLostPerKill: resumedRows.filter((row) => row.epoch <= lastStored).length + Math.min(1, (killedAt - lastStoredAt) / meanEpochMs),
        secondsNewWorkerStartToAttemptStart: resumedAttempt ? seconds(resumedAttempt.startedAt.getTime() - restartedAt) : null,
        secondsNewWorkerStartToFirstResumedEpochRecorded: firstResumed ? seconds(firstResumed.recordedAt.getTime() - restartedAt) : null,
        secondsNewWorkerStartToPolling: seconds(pollingAt - restartedAt),
        secondsKillToAttemptStart: resumedAttempt ? seconds(resumedAttempt.startedAt.getTime() - killedAt) : null,
        heartbeatTimeoutSeconds: options.heartbeatTimeout,
        note: 'Temporal retries the dead attempt only after the heartbeat timeout, so that dominates the time to resume; the rest is the retry interval (5 s), worker start-up and model restore.',
      },
      overhead: {
        meanEpochComputeSeconds: seconds(meanEpochMs),
        summedEpochComputeSeconds: seconds(epochComputeMs),
        runWallSeconds: seconds((plainRecord.finishedAt?.getTime() ?? Date.now()) - launchedAt),
        orchestrationIdleSeconds: seconds(idleMs),
        orchestrationShareOfEpochCompute: round4(idleMs / epochComputeMs),
        bookkeepingPerEpochMs: bookkeeping,
        bookkeepingShareOfEpochCompute: round4(bookkeeping.mean / meanEpochMs),
        note: 'orchestration = time between the first activity and the run end when no activity ran; bookkeeping = one checkpoint upload + artifact rows + epoch row, timed against the same services (overlaps the next epoch in the worker).',
      },
      launch: {
        msLaunchToRunRecord: registered.createdAt.getTime() - launchedAt,
        msLaunchToFirstStageAttempt: firstAttempt ? firstAttempt.startedAt.getTime() - launchedAt : null,
        msLaunchToRunRecordWarmWorker: warmLaunchMs,
        note: 'the first launch is the worker\'s first workflow (its workflow sandbox is created then); the warm ones follow on the same worker. The run record is written by the first activity (registerExperiment).',
      },
    };
  } finally {
    await Promise.all(workers.map((worker) => killProcess(worker)));
    await tracking.close();
    store.close();
    await Promise.allSettled([env.teardown(), minio.stop(), database.drop()]);
    await rm(home, { recursive: true, force: true });
  }
}

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

async function requireExperiment(tracking: TrackingStore, workflowId: string): Promise<ExperimentDetail> {
  const record = await tracking.getExperiment(workflowId);
  if (!record) throw new Error(`no run record for ${workflowId}`);
  return record;
}

/** Milliseconds between `start` and `end` during which no activity attempt was running. */
function idleBetweenActivities(attempts: readonly StageAttemptRecord[], start: number, end: number): number {
  const spans = attempts.map((row) => [row.startedAt.getTime(), (row.finishedAt ?? row.startedAt).getTime()] as const).sort((a, b) => a[0] - b[0]);
  let idle = 0;
  let covered = start;
  for (const [from, to] of spans) {
    if (from > covered) idle += from - covered;
    covered = Math.max(covered, to);
  }
  return idle + Math.max(0, end - covered);
}

/** One epoch's bookkeeping as the training activity does it, on a real checkpoint of the run. */
async function timeBookkeeping(
  tracking: TrackingStore,
  store: ReturnType<typeof createObjectStore>,
  record: ExperimentDetail,
  samples: number,
  home: string,
): Promise<{ samples: number; mean: number; p95: number; checkpointBytes: number }> {
  const checkpoint = record.epochMetrics.find((row) => row.task === 'pretrain' && row.checkpointKey !== null);
  if (!checkpoint?.checkpointKey) throw new Error('the run stored no checkpoint');
  const dir = await downloadPrefix(store, checkpoint.checkpointKey, path.join(home, 'bookkeeping'));
  const times: number[] = [];
  let checkpointBytes = 0;
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    const key = `${checkpoint.checkpointKey}-bench-${i}`;
    const stored = await uploadDirectory(store, dir, key);
    await tracking.recordArtifacts(record.id, stored.map((object) => ({ ...object, kind: 'checkpoint' as const })));
    await tracking.recordEpoch({ ...checkpoint, task: 'bench', epoch: i + 1, checkpointKey: key });
    times.push(performance.now() - started);
    checkpointBytes = stored.reduce((sum, object) => sum + object.sizeBytes, 0);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const mean = times.reduce((sum, ms) => sum + ms, 0) / times.length;
  return { samples, mean: Math.round(mean), p95: Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)] ?? 0), checkpointBytes };
}
