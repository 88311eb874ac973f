import os from 'node:os';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities, createSweepActivities, type DetlActivities } from '@detl/activities';
import { trainingTaskQueueOf, type ServiceSettings } from '@detl/config';
import { withTransientObjectStoreRetries, type ObjectStore } from '@detl/storage';
import { createSweepStore, withTransientRetries, type SweepStore, type TrackingStore } from '@detl/tracking';

/** What a worker process needs to serve DETL workflows and activities. */
export interface DetlWorkerOptions {
  settings: ServiceSettings;
  store: ObjectStore;
  tracking: TrackingStore;
  /**
   * Task queues to poll; default: the main queue (`settings.temporal.taskQueue`) and the training
   * queue (`DETL_TRAINING_TASK_QUEUE`, default `training`). See {@link planQueues} for what runs where.
   */
  queues?: readonly string[];
  /**
   * Activities run at once on each queue this worker polls: on a training queue that is the number
   * of concurrent trainings (`--max-trainings`), each in its own child process. Default: the number of cores.
   */
  activitySlots?: number;
  /**
   * TensorFlow threads per training child when the config leaves it to the worker; default: the
   * cores divided by the activity slots, so concurrent trainings do not oversubscribe the machine.
   */
  trainingThreads?: number;
  /** Sweep records; otherwise a store on `settings.databaseUrl`. */
  sweeps?: SweepStore;
  /** Connection to reuse (tests); otherwise one is opened to `settings.temporal.address`. */
  connection?: NativeConnection;
}

/** Path of the workflow module the worker bundles. */
export const WORKFLOWS_PATH = require.resolve('@detl/workflows/workflows');

/** The activities the workflows send to `trainingTaskQueue`: the only ones a training queue serves. */
export const TRAINING_ACTIVITIES = ['pretrainFromScratch', 'fineTuneFold'] as const satisfies readonly (keyof DetlActivities)[];

/** One task queue a worker polls, and what it serves there. */
export interface WorkerQueue {
  name: string;
  /**
   * `main`: workflow tasks and every activity (bookkeeping, data, Grad-CAM; and training for
   * workflows started without a training queue). `training`: only {@link TRAINING_ACTIVITIES}.
   */
  role: 'main' | 'training';
}

/**
 * What each of `queues` serves: the settings' main queue is `main`, any other name a training queue
 * (the default `training`, or e.g. `training-gpu` for GPU machines that runs send training to).
 * Without `queues`, the main queue and the settings' training queue, so one `detl worker` runs everything.
 */
export function planQueues(settings: Pick<ServiceSettings, 'temporal'>, queues?: readonly string[]): WorkerQueue[] {
  const main = settings.temporal.taskQueue;
  const names = queues && queues.length > 0 ? [...new Set(queues)] : [...new Set([main, trainingTaskQueueOf(settings)])];
  return names.map((name) => ({ name, role: name === main ? 'main' : 'training' }));
}

/** The Temporal workers of one worker process, one per task queue, run and stopped together. */
export interface DetlWorker {
  /** The queues polled, in order. */
  readonly queues: readonly WorkerQueue[];
  /** Activities at once per queue (so trainings at once on a training queue). */
  readonly activitySlots: number;
  /** Polls every queue until {@link DetlWorker.shutdown} (or one of them fails, which stops the others). */
  run(): Promise<void>;
  /** Stops polling, lets running activities finish or be cancelled, then {@link DetlWorker.run} resolves. */
  shutdown(): void;
  /** Runs until `until` settles, then shuts down and returns its value (tests). */
  runUntil<T>(until: Promise<T>): Promise<T>;
}

/** Creates the workers of one process: one Temporal worker per queue of {@link planQueues}, on one connection. */
export async function createDetlWorker(options: DetlWorkerOptions): Promise<DetlWorker> {
  const { settings, store, tracking } = options;
  const queues = planQueues(settings, options.queues);
  const connection = options.connection ?? (await NativeConnection.connect({ address: settings.temporal.address }));
  const slots = options.activitySlots ?? Math.max(1, os.availableParallelism());
  const activities = createActivities({
    // A database or S3 outage of seconds waits inside the activity instead of failing it and discarding its epoch.
    tracking: withTransientRetries(tracking),
    store: withTransientObjectStoreRetries(store),
    settings,
    trainingThreads: options.trainingThreads ?? trainingThreadsFor(slots),
  });
  const trainingOnly = Object.fromEntries(TRAINING_ACTIVITIES.map((name) => [name, activities[name]]));
  const needsSweeps = queues.some((queue) => queue.role === 'main');
  const sweepActivities = needsSweeps ? createSweepActivities({ sweeps: options.sweeps ?? createSweepStore(settings.databaseUrl) }) : {};
  const workers = await Promise.all(
    queues.map((queue) =>
      Worker.create({
        connection,
        namespace: settings.temporal.namespace,
        taskQueue: queue.name,
        // Training workers (GPU machines, say) never run workflow code; only the main queue has workflow tasks.
        ...(queue.role === 'main' ? { workflowsPath: WORKFLOWS_PATH, activities: { ...activities, ...sweepActivities } } : { activities: trainingOnly }),
        maxConcurrentActivityTaskExecutions: slots,
      }),
    ),
  );
  const shutdown = () => {
    for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
  };
  const run = async () => {
    const runs = workers.map((worker) => worker.run());
    try {
      await Promise.all(runs);
    } catch (error) {
      // One queue's worker failing (e.g. a fatal poll error) must not leave the others polling alone.
      shutdown();
      await Promise.allSettled(runs);
      throw error;
    }
  };
  return {
    queues,
    activitySlots: slots,
    run,
    shutdown,
    async runUntil<T>(until: Promise<T>): Promise<T> {
      const running = run();
      try {
        return await Promise.race([until, running.then(() => Promise.reject(new Error('the worker stopped before the awaited work ended')))]);
      } finally {
        shutdown();
        await running.catch(() => undefined);
      }
    },
  };
}

/** Threads each of `slots` concurrent trainings gets on this machine: an equal share of the cores, at least one. */
export function trainingThreadsFor(slots: number, cores: number = os.availableParallelism()): number {
  return Math.max(1, Math.floor(cores / Math.max(1, slots)));
}
