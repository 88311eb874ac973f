import { loadServiceSettings, parseTaskQueueList } from '@detl/config';
import { resolveHomeServices, usesEmbeddedServices } from '@detl/services';
import { createObjectStore } from '@detl/storage';
import { createTrackingStore } from '@detl/tracking';
import { createDetlWorker } from './worker';

function positiveInteger(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${name} must be a positive integer, got "${value}"`);
  return parsed;
}

/**
 * The worker process: `npx tsx apps/worker/src/main.ts` (`detl worker` starts it). Services come
 * from the environment (see libs/config service-settings); `DETL_WORKER_QUEUES` (comma list) names
 * the task queues it polls (default: `DETL_TASK_QUEUE` and `DETL_TRAINING_TASK_QUEUE`);
 * `DETL_WORKER_SLOTS` bounds concurrent activities per queue (so trainings, `--max-trainings`),
 * `DETL_TRAINING_THREADS` sets TensorFlow's threads per training (default: cores ÷ slots),
 * `DETL_TF_BACKEND` forces a backend for every training.
 */
async function main(): Promise<void> {
  const configured = loadServiceSettings();
  // Services the environment does not name are this home's embedded ones, wherever they listen; the
  // default ports may belong to another home, so they are never assumed.
  const settings = usesEmbeddedServices(configured) ? resolveHomeServices(configured) : configured;
  const slots = positiveInteger('DETL_WORKER_SLOTS');
  const trainingThreads = positiveInteger('DETL_TRAINING_THREADS');
  const queueList = process.env['DETL_WORKER_QUEUES'];
  const queues = queueList === undefined || queueList === '' ? undefined : parseTaskQueueList([queueList], 'DETL_WORKER_QUEUES');
  const store = createObjectStore(settings.s3);
  await store.ensureBucket();
  const tracking = createTrackingStore(settings.databaseUrl);
  const worker = await createDetlWorker({ settings, store, tracking, queues, activitySlots: slots, trainingThreads });
  const stop = () => worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // Started by a CLI with an IPC channel: that CLI going away, however it went, ends this worker.
  if (process.send) process.once('disconnect', stop);
  // The first words are what scripts (tests, the durability bench) wait for.
  const served = worker.queues.map(({ name, role }) =>
    role === 'main' ? `"${name}" (workflows, bookkeeping, data, Grad-CAM)` : `"${name}" (training, ${worker.activitySlots} at once)`,
  );
  console.log(`detl worker polling task queues ${served.join(' and ')} at ${settings.temporal.address}`);
  try {
    await worker.run();
  } finally {
    await tracking.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
