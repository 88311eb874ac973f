import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { parseExperimentConfig, serviceEnvironment, type ExperimentConfig, type ServiceSettings } from '@detl/config';
import { embeddedPostgresEntry, findFreePort, resolveToolBinary, startMinio, startTemporalDevServer, type MinioServiceHandle, type TemporalServiceHandle } from '@detl/services';
import { startTestMinio } from '@detl/services/testing';
import { createObjectStore, type S3ObjectStore } from '@detl/storage';
import { applyMigrations, createTrackingStore, type TrackingStore } from '@detl/tracking';
import { createTestDatabase } from '@detl/tracking/testing';

// Helpers of the fault-injection tests (apps/worker/src/worker-*-outage.e2e.test.ts, worker-temporal-restart.e2e.test.ts): services this process can
// stop and start again on the same port and data, and the worker as a real process.

const WORKER_MAIN = require.resolve('../main.ts');
const TSX_LOADER = pathToFileURL(createRequire(WORKER_MAIN).resolve('tsx')).href;

/** A small experiment whose pretraining lasts long enough (several seconds per epoch) to be interrupted. */
export function faultTestConfig(name: string, pretrainEpochs: number, heartbeatTimeoutSeconds = 30): ExperimentConfig {
  return parseExperimentConfig({
    name,
    seed: 5,
    dataset: { source: { kind: 'synthetic', imagesPerClass: 6, pretrainImagesPerClass: 80 }, imageSize: 32, folds: 2 },
    model: { architecture: 'small-vgg', widthMultiplier: 0.5 },
    pretrain: { epochs: pretrainEpochs, batchSize: 8 },
    fineTune: { epochs: 2, batchSize: 8 },
    gradCam: { imagesPerClass: 0 },
    runtime: { heartbeatTimeoutSeconds },
  });
}

/** A worker process (apps/worker/src/main.ts) on `settings`, its output lines collected in `output`; `env` adds to or overrides its environment. */
export function startWorkerProcess(settings: ServiceSettings, output: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, WORKER_MAIN], {
    env: { ...process.env, ...serviceEnvironment(settings), DETL_WORKER_SLOTS: '2', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      output.push(...lines);
    });
  }
  return child;
}

/** The real services an end-to-end test runs on: Temporal dev server, MinIO and a fresh database, plus a home folder. */
export interface TestServices {
  env: TestWorkflowEnvironment;
  tracking: TrackingStore;
  store: S3ObjectStore;
  home: string;
  /** Service settings on these services with a main and a training task queue of their own. */
  settings(): ServiceSettings;
  /** Stops everything and deletes the home and the database. */
  stop(): Promise<void>;
}

/** Starts the {@link TestServices} (`DETL_TEST_DATABASE_URL`'s PostgreSQL when set, else PGlite). */
export async function startTestServices(name: string): Promise<TestServices> {
  const home = await mkdtemp(path.join(os.tmpdir(), `detl-${name}-`));
  const [env, minio, database] = await Promise.all([
    TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: resolveToolBinary('temporal') }, ip: '127.0.0.1' } }),
    startTestMinio(),
    createTestDatabase(),
  ]);
  const tracking = createTrackingStore(database.url);
  const store = createObjectStore({ ...minio.settings, bucket: `${name}-${randomUUID().slice(0, 8)}` });
  await store.ensureBucket();
  return {
    env,
    tracking,
    store,
    home,
    settings: () => {
      const queue = `${name}-${randomUUID()}`;
      return {
        home,
        // Tests share a Temporal server within a file, so the training queue is unique too (not `training`).
        temporal: { address: env.address, namespace: 'default', taskQueue: queue, trainingTaskQueue: `${queue}-training` },
        databaseUrl: database.url,
        s3: { ...minio.settings, bucket: store.bucket },
      };
    },
    async stop() {
      await tracking.close();
      await Promise.allSettled([env.teardown(), minio.stop(), database.drop()]);
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** Kills a process started by a test and waits until it is gone. */
export async function killProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

/** Polls `probe` every 200 ms until it returns a value, or fails after `timeoutMs`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A service a test can take away and bring back on the same address with the same data. */
export interface RestartableService {
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it for good and deletes its data. */
  destroy(): Promise<void>;
}

/** A PostgreSQL of the test's own, migrated, at `url`. */
export interface RestartablePostgres extends RestartableService {
  url: string;
  /** `postgresql` (a cluster of the machine's PostgreSQL binaries) or `pglite` (the embedded server process). */
  engine: 'postgresql' | 'pglite';
}

/** The newest `pg_ctl` of a Debian-style install (`/usr/lib/postgresql/<version>/bin`), if any. */
function findPostgresBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = execFileSync('ls', [root], { encoding: 'utf8' })
    .split('\n')
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = path.join(root, version, 'bin');
    if (existsSync(path.join(bin, 'pg_ctl')) && existsSync(path.join(bin, 'initdb'))) return bin;
  }
  return null;
}

/**
 * Starts a PostgreSQL that only this test uses, so it can be stopped without disturbing a shared
 * server: a fresh cluster of the machine's PostgreSQL (as the `postgres` user when running as root,
 * since initdb refuses root) when its binaries exist, else the embedded PGlite server as a process
 * on a data folder (also when `DETL_FAULT_TEST_POSTGRES=pglite`). Either restarts on the same port and data.
 */
export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'detl-fault-pg-'));
  await chmod(dir, 0o777);
  const port = await findFreePort();
  // DETL_FAULT_TEST_POSTGRES=pglite tries the fallback on a machine that has PostgreSQL binaries.
  const bin = process.env['DETL_FAULT_TEST_POSTGRES'] === 'pglite' ? null : findPostgresBin();
  let service: RestartableService & { url: string; engine: RestartablePostgres['engine'] };
  if (bin !== null) {
    const asPostgres = (command: string, args: string[]): void => {
      const root = process.getuid?.() === 0;
      execFileSync(root ? 'runuser' : command, root ? ['-u', 'postgres', '--', command, ...args] : args, { stdio: 'ignore', timeout: 120_000 });
    };
    const data = path.join(dir, 'data');
    asPostgres(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    const start = async () =>
      asPostgres(path.join(bin, 'pg_ctl'), ['-D', data, '-w', '-t', '60', '-l', path.join(dir, 'postgres.log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
    // Fast shutdown: sessions are ended with 57P01, as in a restart or fail-over.
    const stop = async () => asPostgres(path.join(bin, 'pg_ctl'), ['-D', data, '-w', '-t', '60', '-m', 'fast', 'stop']);
    let running = false;
    service = {
      url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
      engine: 'postgresql',
      start: async () => {
        await start();
        running = true;
      },
      stop: async () => {
        await stop();
        running = false;
      },
      destroy: async () => {
        if (running) await stop().catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } else {
    const entry = embeddedPostgresEntry();
    const loader = pathToFileURL(createRequire(entry).resolve('tsx')).href;
    let child: ChildProcess | undefined;
    const stop = async () => {
      const current = child;
      if (!current || current.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
      // SIGTERM: the server closes its connections and flushes the data folder, as a PostgreSQL stop does.
      current.kill('SIGTERM');
      await exited;
    };
    service = {
      url: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
      engine: 'pglite',
      start: async () => {
        const started = spawn(process.execPath, ['--import', loader, entry, '--data-dir', path.join(dir, 'data'), '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
        child = started;
        await new Promise<void>((resolve, reject) => {
          started.once('exit', (code) => reject(new Error(`embedded PostgreSQL exited with ${code}`)));
          started.stdout?.on('data', (chunk: Buffer) => {
            if (chunk.toString().includes('embedded-postgres ready')) resolve();
          });
        });
      },
      stop,
      destroy: async () => {
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  try {
    await service.start();
    await applyMigrations(service.url);
  } catch (error) {
    await service.destroy();
    throw error;
  }
  return service;
}

/** A MinIO of the test's own. */
export interface RestartableMinio extends RestartableService {
  settings: ServiceSettings['s3'];
}

/** Starts MinIO on a fixed free port and a temp data folder; {@link RestartableService.start} brings it back on both. */
export async function startRestartableMinio(bucket: string): Promise<RestartableMinio> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'detl-fault-minio-'));
  const [port, consolePort] = [await findFreePort(), await findFreePort()];
  const credentials = { accessKeyId: 'fault-test', secretAccessKey: 'fault-test-secret' };
  let handle: MinioServiceHandle | undefined = await startMinio({ home, port, consolePort, credentials });
  return {
    settings: { endpoint: handle.endpoint, region: 'us-east-1', bucket, ...credentials, forcePathStyle: true },
    stop: async () => {
      await handle?.stop();
      handle = undefined;
    },
    start: async () => {
      handle = await startMinio({ home, port, consolePort, credentials });
    },
    destroy: async () => {
      await handle?.stop();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** A Temporal dev server of the test's own, on a SQLite file, so its state survives a restart. */
export interface RestartableTemporal extends RestartableService {
  address: string;
  /** The SQLite file the server keeps its state in. */
  dbFile: string;
}

/** Starts `temporal server start-dev --db-filename <temp>/temporal.db` on a free port (headless). */
export async function startRestartableTemporal(): Promise<RestartableTemporal> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'detl-fault-temporal-'));
  const [port, uiPort] = [await findFreePort(), await findFreePort()];
  const options = { home, port, uiPort, namespace: 'default', headless: true };
  let handle: TemporalServiceHandle | undefined = await startTemporalDevServer(options);
  return {
    address: handle.address,
    dbFile: path.join(home, 'temporal.db'),
    stop: async () => {
      await handle?.stop();
      handle = undefined;
    },
    start: async () => {
      handle = await startTemporalDevServer(options);
    },
    destroy: async () => {
      await handle?.stop();
      await rm(home, { recursive: true, force: true });
    },
  };
}
