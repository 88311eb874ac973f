import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
// The fault tests' small experiment: epochs of seconds, so a kill lands mid-epoch in time.
import { faultTestConfig, killProcess, startTestServices, until } from '@detl/activities/testing';
import { parseExperimentConfig, serviceEnvironment, type ExperimentConfig, type ServiceSettings } from '@detl/config';
import { createObjectStore, downloadPrefix, uploadDirectory } from '@detl/storage';
import type { ExperimentDetail, StageAttemptRecord, TrackingStore } from '@detl/tracking';
import { CHECKPOINT_FILES, initBackend, loadModel, loadOptimizer, modelToFiles, TENSORFLOW_THREAD_VARIABLES, type BackendPreference } from '@detl/ml';
import { experimentWorkflow, type ExperimentWorkflowInput } from '@detl/workflows';

// The worker as the real process it is in production: a path, since tools do not import apps.
const WORKER_MAIN = path.resolve(__dirname, '../../apps/worker/src/main.ts');
const TSX_LOADER = pathToFileURL(createRequire(WORKER_MAIN).resolve('tsx')).href;

/** A worker process; `polling` resolves once it polls (its workflow bundle built), which takes seconds. `env` adds to its environment. */
function startWorkerProcess(settings: ServiceSettings, env: NodeJS.ProcessEnv = {}): { child: ChildProcess; polling: Promise<void> } {
  // This process' TensorFlow (the checkpoint timing) sets its thread variables in process.env; the
  // workers' trainings must choose their own threads (DETL_TRAINING_THREADS, cores ÷ slots).
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !Object.values(TENSORFLOW_THREAD_VARIABLES).includes(name as 'TF_NUM_INTRAOP_THREADS')));
  const child = spawn(process.execPath, ['--import', TSX_LOADER, WORKER_MAIN], {
    env: { ...inherited, ...serviceEnvironment(settings), DETL_WORKER_SLOTS: '2', ...env },
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

/**
 * `npm run bench -- durability [--epochs=12] [--kill-after=3] [--heartbeat-timeout=15] [--bookkeeping-samples=20]
 *   [--overhead-epochs=6] [--scale-epochs=3]`
 *
 * Durability and scale-out costs of real worker processes on real services (the Temporal dev server
 * of `@temporalio/testing`, MinIO, PostgreSQL: `DETL_TEST_DATABASE_URL` or the embedded PGlite):
 *
 * - **Overhead** on a realistic epoch: the demo's default data and net (small-vgg at 64 px, 400
 *   Data-A / 320 Data-B synthetic images) pretrained for `--overhead-epochs` by a default worker
 *   (main + training queue, one training with all cores, the backend `auto` picks: native when built).
 *   Where the time per epoch goes besides compute (`durationMs` of the epoch rows: training +
 *   validation), each part measured on its own against the same services and the run's own checkpoint:
 *   (a) on the training's critical path, in the training child: serialising the checkpoint (model and
 *   optimizer state) before the next epoch changes the weights; (b) overlapped with the next epoch:
 *   in the child, the checkpoint written to local disk (best-so-far copies, state file) and the epoch
 *   message to the worker (IPC) — on the critical path before this bench's change, so reported both
 *   ways; in the worker, the checkpoint upload, its artifact rows and the epoch row, as wall time and
 *   as this process' CPU time (what it can take from training when no core is spare); (c)
 *   orchestration: time no activity ran between the first activity and the run's end (workflow
 *   tasks, scheduling, polling).
 * - **Scale-out**: the same data's 5-fold fine-tuning (`--scale-epochs` each, on the overhead run's
 *   pretrained model) with 1, then 2 training-queue worker processes (`--max-trainings 1 --threads 1`
 *   each) beside one main-queue worker; wall time from the first fold's start to the last fold's end,
 *   and the ratio. 5 equal folds on 2 workers need 3 rounds, so 5/3 = 1.67× is the ideal.
 * - **SIGKILL**: a run (the fault tests' small experiment, epochs of seconds) whose worker gets SIGKILL
 *   half an epoch after `--kill-after` stored pretraining epochs, then a new worker process. Epochs
 *   lost = stored epochs trained again by the new attempt (the run record is the resume point, so 0
 *   is expected) plus the in-flight epoch's share of work (time since the last stored epoch ÷ mean
 *   epoch time). Seconds from the new worker's start to its attempt starting and to its first resumed
 *   epoch being recorded; the heartbeat timeout bounds how soon Temporal gives the dead attempt up.
 * - **Launch to first activity**: `workflow.start` → the run record created by the first activity,
 *   and → the first stage attempt's start, on a polling worker; then warm launches on the same worker.
 */
export default async function durability(args: string[]): Promise<Record<string, unknown>> {
  const options = { epochs: 12, killAfter: 3, heartbeatTimeout: 15, bookkeepingSamples: 20, overheadEpochs: 6, scaleEpochs: 3 };
  const keys: Record<string, keyof typeof options> = {
    epochs: 'epochs',
    'kill-after': 'killAfter',
    'heartbeat-timeout': 'heartbeatTimeout',
    'bookkeeping-samples': 'bookkeepingSamples',
    'overhead-epochs': 'overheadEpochs',
    'scale-epochs': 'scaleEpochs',
  };
  for (const arg of args) {
    const [key = '', value = ''] = arg.replace(/^--/, '').split('=', 2) as [string?, string?];
    const option = keys[key];
    if (option === undefined) throw new Error(`unknown argument ${arg} (expected --${Object.keys(keys).join('=<n>, --')}=<n>)`);
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${key} needs a positive integer, got "${value}"`);
    options[option] = n;
  }
  if (options.killAfter >= options.epochs) throw new Error('--kill-after must be below --epochs');
  if (options.heartbeatTimeout < 15) throw new Error('--heartbeat-timeout must be at least 15 (runtime.heartbeatTimeoutSeconds)');

  const loadAtStart = os.loadavg();
  const uptimeAtStart = uptime();
  const services = await startTestServices('bench-durability');
  const { env, tracking, store, home } = services;
  const workers: ChildProcess[] = [];
  const seconds = (ms: number) => Math.round(ms / 10) / 100;
  try {
    // A main and a training queue of their own per part, so no part's worker takes another's work.
    const settings = (queue: string): ServiceSettings => ({
      ...services.settings(),
      temporal: { address: env.address, namespace: 'default', taskQueue: queue, trainingTaskQueue: `${queue}-training` },
    });
    const start = (queues: ServiceSettings, id: string, config: ExperimentConfig, extra: Partial<ExperimentWorkflowInput> = {}) =>
      env.client.workflow.start(experimentWorkflow, { taskQueue: queues.temporal.taskQueue, workflowId: id, args: [{ config, trainingTaskQueue: queues.temporal.trainingTaskQueue, ...extra }] });

    // Overhead and launch: a default worker (both queues), one training at a time with every core.
    const plain = settings(`durability-plain-${randomUUID()}`);
    const plainWorker = startWorkerProcess(plain, { DETL_WORKER_SLOTS: '1' });
    workers.push(plainWorker.child);
    // The worker is up (polling) before the launch is timed, as a worker fleet would be.
    await plainWorker.polling;
    const demo = demoConfig(options.overheadEpochs, 1);
    const plainId = `durability-plain-${randomUUID()}`;
    const launchedAt = Date.now();
    const plainHandle = await start(plain, plainId, demo);
    // Polled every 100 ms, as all of this bench's waits (the kill below lands half an epoch after its wait ends).
    const registered = await until('the run record', 120_000, () => tracking.getExperiment(plainId), 100);
    const plainResult = await plainHandle.result();
    const plainRecord = await requireExperiment(tracking, plainId);
    const firstAttempt = [...plainRecord.stageAttempts].sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime())[0];
    const epochComputeMs = plainRecord.epochMetrics.reduce((sum, row) => sum + row.durationMs, 0);
    // From the first activity on: the launch is measured on its own below.
    const idleMs = idleBetweenActivities(plainRecord.stageAttempts, firstAttempt?.startedAt.getTime() ?? launchedAt, plainRecord.finishedAt?.getTime() ?? Date.now());
    const pretrainRows = plainRecord.epochMetrics.filter((row) => row.task === 'pretrain');
    const meanEpochMs = pretrainRows.reduce((sum, row) => sum + row.durationMs, 0) / Math.max(1, pretrainRows.length);
    const pretrainAttempt = plainRecord.stageAttempts.find((row) => row.task === 'pretrain' && row.status === 'succeeded');
    const pretrainRuntime = (pretrainAttempt?.details['runtime'] ?? {}) as { backend?: string; intraOpThreads?: number };
    const bookkeeping = await timeBookkeeping(tracking, store, plainRecord, options.bookkeepingSamples, home);
    const checkpointWrite = await timeCheckpointWrite(store, plainRecord, options.bookkeepingSamples, home, pretrainRuntime);
    const ipc = await timeEpochMessage(options.bookkeepingSamples * 5, pretrainRows[0]);
    // The same worker again, now warm (workflow code loaded, connections open): each launch waits
    // for its run record, then the run is terminated.
    const warmLaunchMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const id = `durability-warm-${randomUUID()}`;
      const started = Date.now();
      const handle = await start(plain, id, demo);
      const record = await until('the warm run record', 60_000, () => tracking.getExperiment(id), 100);
      warmLaunchMs.push(record.createdAt.getTime() - started);
      await handle.terminate('durability bench: launch latency only');
    }
    await Promise.all(workers.splice(0).map((worker) => killProcess(worker)));

    // Scale-out: one main-queue worker, then 1 and 2 training workers with one single-threaded slot each.
    const scale = settings(`durability-scale-${randomUUID()}`);
    const scaleMain = startWorkerProcess(scale, { DETL_WORKER_QUEUES: scale.temporal.taskQueue, DETL_WORKER_SLOTS: '4' });
    workers.push(scaleMain.child);
    const trainingWorkerEnv = { DETL_WORKER_QUEUES: scale.temporal.trainingTaskQueue, DETL_WORKER_SLOTS: '1', DETL_TRAINING_THREADS: '1' };
    const scaleRuns: Record<string, unknown>[] = [];
    const trainers: ChildProcess[] = [];
    for (const count of [1, 2]) {
      while (trainers.length < count) {
        const trainer = startWorkerProcess(scale, trainingWorkerEnv);
        workers.push(trainer.child);
        trainers.push(trainer.child);
        await trainer.polling;
      }
      await scaleMain.polling;
      const id = `durability-scale-${count}-${randomUUID()}`;
      const load = os.loadavg();
      const handle = await start(scale, id, demoConfig(options.overheadEpochs, options.scaleEpochs), { pretrainedModelPrefix: plainResult.pretrainedModelPrefix ?? undefined });
      await handle.result();
      const record = await requireExperiment(tracking, id);
      const folds = record.stageAttempts.filter((row) => row.task.startsWith('fold-') && row.status === 'succeeded');
      const from = Math.min(...folds.map((row) => row.startedAt.getTime()));
      const to = Math.max(...folds.map((row) => (row.finishedAt ?? row.startedAt).getTime()));
      const foldRuntime = (folds[0]?.details['runtime'] ?? {}) as { backend?: string; intraOpThreads?: number };
      // The comparison is one single-threaded training per worker; anything else measures something else.
      if (foldRuntime.backend === 'tensorflow' && foldRuntime.intraOpThreads !== 1) throw new Error(`scale-out folds ran with ${foldRuntime.intraOpThreads} TensorFlow threads, not 1`);
      scaleRuns.push({
        trainingWorkers: count,
        folds: folds.length,
        fineTuneWallSeconds: seconds(to - from),
        foldAttemptSeconds: folds.map((row) => seconds((row.finishedAt ?? row.startedAt).getTime() - row.startedAt.getTime())),
        foldEpochComputeSeconds: seconds(record.epochMetrics.filter((row) => row.task.startsWith('fold-')).reduce((sum, row) => sum + row.durationMs, 0)),
        workerIdentities: new Set(folds.map((row) => row.workerIdentity)).size,
        backend: foldRuntime.backend ?? null,
        intraOpThreads: foldRuntime.intraOpThreads ?? null,
        loadAverageBefore: load,
      });
    }
    await Promise.all(workers.splice(0).map((worker) => killProcess(worker)));
    const [one, two] = scaleRuns as [{ fineTuneWallSeconds: number }, { fineTuneWallSeconds: number }];

    // SIGKILL run (the fault tests' small experiment: epochs of seconds, so the kill lands mid-epoch in time).
    const config = faultTestConfig('durability-bench', options.epochs, options.heartbeatTimeout);
    const crash = settings(`durability-crash-${randomUUID()}`);
    const firstWorker = startWorkerProcess(crash);
    const first = firstWorker.child;
    workers.push(first);
    await firstWorker.polling;
    const crashId = `durability-crash-${randomUUID()}`;
    const crashHandle = await start(crash, crashId, config);
    const storedRows = async () => (await tracking.getExperiment(crashId))?.epochMetrics.filter((row) => row.task === 'pretrain') ?? [];
    const beforeKill = await until(`${options.killAfter} stored pretraining epochs`, 300_000, async () => {
      const rows = await storedRows();
      return rows.length >= options.killAfter ? rows : null;
    }, 100);
    const crashEpochMs = beforeKill.reduce((sum, row) => sum + row.durationMs, 0) / beforeKill.length;
    // Half an epoch later: a kill lands anywhere in an epoch, so its expected loss is half of one.
    await new Promise((resolve) => setTimeout(resolve, crashEpochMs / 2));
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

    // The child waits only for the serialisation; the disk writes and the epoch message overlap the
    // next epoch (libs/ml training-runner). Before that change the child waited for all three.
    const criticalPathMs = checkpointWrite.serialiseMeanMs;
    const criticalPathBeforeMs = checkpointWrite.serialiseMeanMs + checkpointWrite.writeMeanMs + ipc.oneWayMs;
    return {
      options,
      // run.ts samples the load after the benchmark; these bracket it.
      loadAverage: { atStart: loadAtStart, atEnd: os.loadavg() },
      uptime: { atStart: uptimeAtStart, atEnd: uptime() },
      timingNote: 'measured on a 2-core machine shared with other engineers\' builds, tests and trainings (see uptime): absolute times are noisy, and the 1 vs 2 worker ratio suffers most, since the second worker only helps when a second core is free',
      database: services.databaseEngine,
      scaleOut: {
        config: 'demo data and net (small-vgg 64 px, 80 images per Data-B class), 5 folds, fine-tuning only (pretrained model reused), one main-queue worker + N training workers, each --max-trainings 1 --threads 1',
        runs: scaleRuns,
        speedupTwoWorkers: Math.round((one.fineTuneWallSeconds / two.fineTuneWallSeconds) * 100) / 100,
        idealSpeedupFiveFoldsTwoWorkers: Math.round((5 / Math.ceil(5 / 2)) * 100) / 100,
        note: '5 equal folds on 2 single-slot workers take 3 rounds, so 5/3 = 1.67x is the most 2 workers can give on this stage; the 1.8x goal needs more folds than workers by a wider margin (e.g. 10 folds: 10/5 = 2x) or work stealing inside a fold',
      },
      overhead: {
        config: `demo defaults (small-vgg 64 px, 200 Data-A images per class, batch 16), ${options.overheadEpochs} pretraining epochs, one training with ${pretrainRuntime.intraOpThreads ?? '?'} threads`,
        backend: pretrainRuntime.backend ?? null,
        meanEpochComputeSeconds: seconds(meanEpochMs),
        summedEpochComputeSeconds: seconds(epochComputeMs),
        runWallSeconds: seconds((plainRecord.finishedAt?.getTime() ?? Date.now()) - launchedAt),
        pretrainAttemptSeconds: pretrainAttempt?.finishedAt ? seconds(pretrainAttempt.finishedAt.getTime() - pretrainAttempt.startedAt.getTime()) : null,
        pretrainEpochComputeSeconds: seconds(pretrainRows.reduce((sum, row) => sum + row.durationMs, 0)),
        checkpointInChild: checkpointWrite,
        epochMessageIpc: ipc,
        criticalPath: {
          what: 'checkpoint serialisation in the training child',
          perEpochMs: Math.round(criticalPathMs * 10) / 10,
          shareOfEpochCompute: round4(criticalPathMs / meanEpochMs),
          beforeOverlappingDiskWrites: {
            what: 'serialisation + disk writes and best-so-far copies + epoch message, all awaited before the next epoch',
            perEpochMs: Math.round(criticalPathBeforeMs * 10) / 10,
            shareOfEpochCompute: round4(criticalPathBeforeMs / meanEpochMs),
          },
        },
        overlapped: {
          what: 'in the child: disk writes + epoch message; in the worker: checkpoint upload + artifact rows + epoch row + heartbeat',
          childDiskWriteAndMessageMs: Math.round((checkpointWrite.writeMeanMs + ipc.oneWayMs) * 10) / 10,
          bookkeepingPerEpochMs: bookkeeping,
          wallShareOfEpochCompute: round4((checkpointWrite.writeMeanMs + ipc.oneWayMs + bookkeeping.mean) / meanEpochMs),
          workerCpuShareOfEpochCompute: round4(bookkeeping.cpuMean / meanEpochMs),
        },
        orchestration: {
          idleSeconds: seconds(idleMs),
          shareOfEpochCompute: round4(idleMs / epochComputeMs),
          perRunSecondsPerEpoch: seconds(idleMs / Math.max(1, plainRecord.epochMetrics.length)),
          idleStretchesMs: idleStretches(plainRecord.stageAttempts, plainRecord.finishedAt?.getTime() ?? Date.now()),
          note: 'a fixed cost per run (about 10 hand-offs between activities, each a workflow task and a task dispatch; markExperimentRunning and finishExperiment are untracked activities and count here), not per epoch: a full demo run (12 + 5 x 15 = 87 epochs, 11 here) spreads it over about 8 times the compute',
        },
        totalShareOfEpochCompute: round4(criticalPathMs / meanEpochMs + idleMs / epochComputeMs),
        totalShareIfNoSpareCore: round4((criticalPathMs + bookkeeping.cpuMean) / meanEpochMs + idleMs / epochComputeMs),
        note: 'critical path = what the training child waits for per epoch besides compute (serialising the checkpoint); overlapped = the child writing it to disk and announcing it, the worker uploading it and writing its rows, while the child computes the next epoch (the worker CPU competes with training only when no core is spare; MinIO and PostgreSQL CPU not included); orchestration = time between the first activity and the run end when no activity ran, over the run\'s summed epoch compute. Per-activity start-up (child process, TensorFlow, data, final model upload) is about pretrainAttemptSeconds - pretrainEpochComputeSeconds - epochs x criticalPath.',
      },
      sigkill: {
        killedAfterStoredEpochs: lastStored,
        attempts: attempts.map((row) => ({ attempt: row.attempt, status: row.status, error: row.error })),
        storedEpochsTrainedAgain: resumedRows.filter((row) => row.epoch <= lastStored).length,
        firstResumedEpoch: firstResumed?.epoch ?? null,
        inFlightSecondsLost: seconds(killedAt - lastStoredAt),
        inFlightEpochFractionLost: Math.round(((killedAt - lastStoredAt) / crashEpochMs) * 100) / 100,
        epochsLostPerKill: Math.round((resumedRows.filter((row) => row.epoch <= lastStored).length + Math.min(1, (killedAt - lastStoredAt) / crashEpochMs)) * 100) / 100,
        secondsNewWorkerStartToAttemptStart: resumedAttempt ? seconds(resumedAttempt.startedAt.getTime() - restartedAt) : null,
        secondsNewWorkerStartToFirstResumedEpochRecorded: firstResumed ? seconds(firstResumed.recordedAt.getTime() - restartedAt) : null,
        secondsNewWorkerStartToPolling: seconds(pollingAt - restartedAt),
        secondsKillToAttemptStart: resumedAttempt ? seconds(resumedAttempt.startedAt.getTime() - killedAt) : null,
        heartbeatTimeoutSeconds: options.heartbeatTimeout,
        note: 'Temporal retries the dead attempt only after the heartbeat timeout, so that dominates the time to resume; the rest is the retry interval (5 s), worker start-up and model restore.',
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
    await services.stop();
  }
}

/** The demo's data and net (the config defaults: synthetic 80 / 200 images per class, 64 px, small-vgg), shorter. */
function demoConfig(pretrainEpochs: number, fineTuneEpochs: number): ExperimentConfig {
  return parseExperimentConfig({ name: 'durability-demo', pretrain: { epochs: pretrainEpochs }, fineTune: { epochs: fineTuneEpochs } });
}

/** `uptime`'s line (load averages over 1, 5, 15 minutes), recorded with the figures. */
function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average ${os.loadavg().map((load) => load.toFixed(2)).join(', ')}`;
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

/**
 * Where the orchestration time goes: each stretch of time no tracked activity ran, named by the
 * attempts around it (workflow tasks, the untracked bookkeeping activities, task dispatch).
 */
function idleStretches(attempts: readonly StageAttemptRecord[], end: number): { between: string; ms: number }[] {
  const spans = attempts.map((row) => ({ task: row.task, from: row.startedAt.getTime(), to: (row.finishedAt ?? row.startedAt).getTime() })).sort((a, b) => a.from - b.from);
  const stretches: { between: string; ms: number }[] = [];
  let covered = spans[0]?.to ?? end;
  let last = spans[0]?.task ?? 'start';
  for (const span of spans.slice(1)) {
    if (span.from > covered) stretches.push({ between: `${last} -> ${span.task}`, ms: span.from - covered });
    if (span.to >= covered) {
      covered = span.to;
      last = span.task;
    }
  }
  if (end > covered) stretches.push({ between: `${last} -> run end`, ms: end - covered });
  return stretches;
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
): Promise<{ samples: number; mean: number; p95: number; cpuMean: number; checkpointBytes: number }> {
  const checkpoint = record.epochMetrics.find((row) => row.task === 'pretrain' && row.checkpointKey !== null);
  if (!checkpoint?.checkpointKey) throw new Error('the run stored no checkpoint');
  const dir = await downloadPrefix(store, checkpoint.checkpointKey, path.join(home, 'bookkeeping'));
  const times: number[] = [];
  let checkpointBytes = 0;
  const cpuBefore = process.cpuUsage();
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    const key = `${checkpoint.checkpointKey}-bench-${i}`;
    const stored = await uploadDirectory(store, dir, key);
    await tracking.recordArtifacts(record.id, stored.map((object) => ({ ...object, kind: 'checkpoint' as const })));
    await tracking.recordEpoch({ ...checkpoint, task: 'bench', epoch: i + 1, checkpointKey: key });
    times.push(performance.now() - started);
    checkpointBytes = stored.reduce((sum, object) => sum + object.sizeBytes, 0);
  }
  const cpu = process.cpuUsage(cpuBefore);
  const { mean, p95 } = summarise(times);
  return { samples, mean: Math.round(mean), p95: Math.round(p95), cpuMean: Math.round((cpu.user + cpu.system) / 1000 / samples), checkpointBytes };
}

function summarise(times: readonly number[]): { mean: number; p95: number } {
  const sorted = [...times].sort((a, b) => a - b);
  const mean = times.reduce((sum, ms) => sum + ms, 0) / Math.max(1, times.length);
  return { mean, p95: sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)] ?? 0 };
}

/**
 * What the training child does with each epoch's checkpoint (libs/ml training-runner's onEpochEnd),
 * on the run's own last pretraining checkpoint with the backend and threads its training used:
 * `serialise` (model and optimizer state to bytes; the next epoch waits for it, since it changes the
 * weights) and `write` (the files, metrics and state written to local disk and the best-so-far
 * weights copied into `best/` and into the epoch's folder, the case where both copies happen; done
 * while the next epoch computes, and before that change on the critical path too).
 */
async function timeCheckpointWrite(
  store: ReturnType<typeof createObjectStore>,
  record: ExperimentDetail,
  samples: number,
  home: string,
  runtime: { backend?: string; intraOpThreads?: number },
): Promise<{ samples: number; serialiseMeanMs: number; serialiseP95Ms: number; writeMeanMs: number; writeP95Ms: number; bytes: number; backend: string }> {
  const last = record.epochMetrics.filter((row) => row.task === 'pretrain' && row.checkpointKey !== null).sort((a, b) => b.epoch - a.epoch)[0];
  if (!last?.checkpointKey) throw new Error('the run stored no pretraining checkpoint');
  const source = await downloadPrefix(store, last.checkpointKey, path.join(home, 'checkpoint-source'));
  const backend = await initBackend((runtime.backend ?? 'auto') as BackendPreference, runtime.intraOpThreads === undefined ? {} : { threads: runtime.intraOpThreads });
  const model = await loadModel(source, { architecture: 'small-vgg' });
  const optimizer = await loadOptimizer(source);
  const copyModel = async (from: string, to: string) => {
    await mkdir(to, { recursive: true });
    for (const name of [CHECKPOINT_FILES.model, CHECKPOINT_FILES.weights]) await copyFile(path.join(from, name), path.join(to, name));
  };
  const best = path.join(home, 'checkpoint-write', 'best');
  const serialising: number[] = [];
  const writing: number[] = [];
  let bytes = 0;
  try {
    for (let i = 0; i < samples; i++) {
      const dir = path.join(home, 'checkpoint-write', `epoch-${i + 1}`);
      const started = performance.now();
      const files = await modelToFiles(model, optimizer ? { optimizer } : {});
      const serialised = performance.now();
      await mkdir(dir, { recursive: true });
      for (const [name, content] of files) await writeFile(path.join(dir, name), content);
      await writeFile(path.join(dir, 'metrics.json'), JSON.stringify({ ...last, checkpointDir: dir }));
      await copyModel(dir, best);
      await copyModel(best, path.join(dir, 'best'));
      await writeFile(path.join(dir, 'training-state.json'), JSON.stringify({ epoch: i + 1, best: { epoch: 1, validationAccuracy: 0.5 } }));
      serialising.push(serialised - started);
      writing.push(performance.now() - serialised);
      if (i === 0) bytes = await folderBytes(dir);
    }
  } finally {
    model.dispose();
    optimizer?.dispose();
  }
  const serialise = summarise(serialising);
  const write = summarise(writing);
  const tenths = (ms: number) => Math.round(ms * 10) / 10;
  return { samples, serialiseMeanMs: tenths(serialise.mean), serialiseP95Ms: tenths(serialise.p95), writeMeanMs: tenths(write.mean), writeP95Ms: tenths(write.p95), bytes, backend: backend.backend };
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? await folderBytes(full) : (await stat(full)).size;
  }
  return total;
}

/**
 * The epoch message from the training child to the worker (`process.send` with advanced
 * serialization, as libs/ml run-training-job forks it): round trips to an echoing child process,
 * halved. The child waits only for its own send to complete, so one way is what it costs the training.
 */
async function timeEpochMessage(samples: number, row: ExperimentDetail['epochMetrics'][number] | undefined): Promise<{ samples: number; roundTripMeanMs: number; oneWayMs: number }> {
  const child = spawn(process.execPath, ['-e', "process.on('message', (message) => process.send(message))"], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'advanced' });
  const message = { type: 'epoch', metrics: { ...row, checkpointDir: '/var/lib/detl/scratch/experiment/pretrain/1/output/epoch-1' } };
  const times: number[] = [];
  try {
    for (let i = 0; i < samples + 5; i++) {
      const started = performance.now();
      const reply = once(child, 'message');
      child.send(message);
      await reply;
      // The first few warm the channel up.
      if (i >= 5) times.push(performance.now() - started);
    }
  } finally {
    child.kill('SIGKILL');
  }
  const { mean } = summarise(times);
  return { samples, roundTripMeanMs: Math.round(mean * 100) / 100, oneWayMs: Math.round((mean / 2) * 100) / 100 };
}
