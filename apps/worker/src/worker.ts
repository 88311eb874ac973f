import os from 'node:os';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities, createSweepActivities } from '@detl/activities';
import type { ServiceSettings } from '@detl/config';
import { withTransientObjectStoreRetries, type ObjectStore } from '@detl/storage';
import { createSweepStore, withTransientRetries, type SweepStore, type TrackingStore } from '@detl/tracking';

/** What a worker process needs to serve DETL workflows and activities. */
export interface DetlWorkerOptions {
  settings: ServiceSettings;
  store: ObjectStore;
  tracking: TrackingStore;
  /**
   * Activities run at once. Each training activity occupies one core in its own child process,
   * so the default is the number of cores.
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

/** Creates a worker polling `settings.temporal.taskQueue` for both workflow and activity tasks. */
export async function createDetlWorker(options: DetlWorkerOptions): Promise<Worker> {
  const { settings, store, tracking } = options;
  const connection = options.connection ?? (await NativeConnection.connect({ address: settings.temporal.address }));
  const slots = options.activitySlots ?? Math.max(1, os.availableParallelism());
  return Worker.create({
    connection,
    namespace: settings.temporal.namespace,
    taskQueue: settings.temporal.taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: {
      ...createActivities({
        // A database or S3 outage of seconds waits inside the activity instead of failing it and discarding its epoch.
        tracking: withTransientRetries(tracking),
        store: withTransientObjectStoreRetries(store),
        settings,
        trainingThreads: options.trainingThreads ?? trainingThreadsFor(slots),
      }),
      ...createSweepActivities({ sweeps: options.sweeps ?? createSweepStore(settings.databaseUrl) }),
    },
    maxConcurrentActivityTaskExecutions: slots,
  });
}

/** Threads each of `slots` concurrent trainings gets on this machine: an equal share of the cores, at least one. */
export function trainingThreadsFor(slots: number, cores: number = os.availableParallelism()): number {
  return Math.max(1, Math.floor(cores / Math.max(1, slots)));
}
