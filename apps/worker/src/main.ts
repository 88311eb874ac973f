import { loadServiceSettings } from '@detl/config';
import { createObjectStore } from '@detl/storage';
import { createTrackingStore } from '@detl/tracking';
import { createDetlWorker } from './worker';

/**
 * The worker process: `npx tsx apps/worker/src/main.ts`. Services come from the environment
 * (see libs/config service-settings); `DETL_WORKER_SLOTS` bounds concurrent activities.
 */
async function main(): Promise<void> {
  const settings = loadServiceSettings();
  const slots = process.env.DETL_WORKER_SLOTS === undefined ? undefined : Number(process.env.DETL_WORKER_SLOTS);
  if (slots !== undefined && (!Number.isInteger(slots) || slots < 1)) {
    throw new Error(`DETL_WORKER_SLOTS must be a positive integer, got "${process.env.DETL_WORKER_SLOTS}"`);
  }
  const store = createObjectStore(settings.s3);
  await store.ensureBucket();
  const tracking = createTrackingStore(settings.databaseUrl);
  const worker = await createDetlWorker({ settings, store, tracking, activitySlots: slots });
  const stop = () => worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // Started by a CLI with an IPC channel: that CLI going away, however it went, ends this worker.
  if (process.send) process.once('disconnect', stop);
  console.log(`detl worker polling task queue "${settings.temporal.taskQueue}" at ${settings.temporal.address}`);
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
