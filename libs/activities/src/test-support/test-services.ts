import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ServiceSettings } from '@detl/config';
import { startTestMinio, startTestTemporal } from '@detl/services/testing';
import { createObjectStore, type S3ObjectStore } from '@detl/storage';
import { createTrackingStore, type TrackingStore } from '@detl/tracking';
import { createTestDatabase, type TestDatabase } from '@detl/tracking/testing';

// Lives here, in the lowest library that may use storage, tracking and services together, so that
// the apps' and the tools' tests share it (an app's test-support is its own).

/** Throw-away MinIO and PostgreSQL with the clients the stages use on them, and a temp folder. */
export interface TestStores {
  tracking: TrackingStore;
  /** A bucket of its own (created) on the throw-away MinIO. */
  store: S3ObjectStore;
  /** S3 settings of `store`'s bucket, for settings and environments of processes under test. */
  s3: ServiceSettings['s3'];
  /** The fresh database (`DETL_TEST_DATABASE_URL`'s PostgreSQL when set, else PGlite), migrated. */
  databaseUrl: string;
  /** Which of the two it is. */
  databaseEngine: TestDatabase['engine'];
  /** An empty temp folder (`detl-<name>-…`), deleted by `stop`. */
  home: string;
  /** Closes the clients, stops the services, drops the database and deletes `home`. */
  stop(): Promise<void>;
}

/** Starts the {@link TestStores}; `name` names the temp folder and the bucket, so it must be a valid bucket prefix. */
export async function startTestStores(name: string): Promise<TestStores> {
  const home = await mkdtemp(path.join(os.tmpdir(), `detl-${name}-`));
  const [minio, database] = await Promise.all([startTestMinio(), createTestDatabase()]);
  const tracking = createTrackingStore(database.url);
  const s3 = { ...minio.settings, bucket: `${name}-${randomUUID().slice(0, 8)}` };
  const store = createObjectStore(s3);
  await store.ensureBucket();
  return {
    tracking,
    store,
    s3,
    databaseUrl: database.url,
    databaseEngine: database.engine,
    home,
    async stop() {
      await tracking.close();
      store.close();
      await Promise.allSettled([minio.stop(), database.drop()]);
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** The {@link TestStores} plus a Temporal dev server: what a workflow runs on end to end. */
export interface TestServices extends TestStores {
  env: TestWorkflowEnvironment;
  /** Service settings on these services, with a main and a training task queue of their own (`<name>-<uuid>`, `…-training`). */
  settings(): ServiceSettings;
}

/** Starts the {@link TestServices}, the three services at once. */
export async function startTestServices(name: string): Promise<TestServices> {
  const [temporal, started] = await Promise.allSettled([startTestTemporal(), startTestStores(name)]);
  if (temporal.status === 'rejected' || started.status === 'rejected') {
    // What did start must not outlive the failed start.
    await Promise.allSettled([temporal.status === 'fulfilled' ? temporal.value.teardown() : null, started.status === 'fulfilled' ? started.value.stop() : null]);
    throw temporal.status === 'rejected' ? temporal.reason : (started as PromiseRejectedResult).reason;
  }
  const env = temporal.value;
  const stores = started.value;
  return {
    ...stores,
    env,
    settings: () => {
      const queue = `${name}-${randomUUID()}`;
      return {
        home: stores.home,
        // Tests share a Temporal server within a file, so the training queue is unique too (not `training`).
        temporal: { address: env.address, namespace: 'default', taskQueue: queue, trainingTaskQueue: `${queue}-training` },
        databaseUrl: stores.databaseUrl,
        s3: stores.s3,
      };
    },
    async stop() {
      await Promise.allSettled([stores.stop(), env.teardown()]);
    },
  };
}
