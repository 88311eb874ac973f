import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';
import { Client, Connection, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { killProcess, startWorkerProcess as startDetlWorkerProcess, until } from '@detl/activities/testing';
import type { ExperimentConfig, ServiceSettings } from '@detl/config';
import { embeddedPostgresEntry, findFreePort, startMinio, startTemporalDevServer, type MinioServiceHandle, type TemporalServiceHandle } from '@detl/services';
import { startTestMinio, startTestTemporal } from '@detl/services/testing';
import { createObjectStore, type S3ObjectStore } from '@detl/storage';
import { applyMigrations, createTrackingStore, type EpochMetricRecord, type TrackingStore } from '@detl/tracking';
import { createTestDatabase } from '@detl/tracking/testing';
import { experimentWorkflow } from '@detl/workflows';

// The shared helpers (throw-away services, worker processes, polling) are @detl/activities/testing's,
// re-exported for this app's tests.
export { faultTestConfig, killProcess, sleep, startTestServices, until, type TestServices } from '@detl/activities/testing';

// Helpers of the fault-injection tests (apps/worker/src/worker-*-outage.e2e.test.ts, worker-temporal-restart.e2e.test.ts): services this process can
// stop and start again on the same port and data, and the worker as a real process.

const WORKER_MAIN = require.resolve('../main.ts');

/** A worker process of this app (main.ts) on `settings`, its output lines collected in `output`; `env` adds to or overrides its environment. */
export function startWorkerProcess(settings: ServiceSettings, output: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return startDetlWorkerProcess({ main: WORKER_MAIN, settings, output, env });
}

/** The service a fault test takes away, by name. */
export interface FaultServices {
  temporal: RestartableTemporal;
  minio: RestartableMinio;
  postgres: RestartablePostgres;
}

/** A run of {@link FaultTestServices.startRun}, two of whose pretraining epochs are stored. */
export interface FaultTestRun {
  workflowId: string;
  handle: WorkflowHandleWithFirstExecutionRunId<typeof experimentWorkflow>;
  /** The worker process running it; killed by {@link FaultTestServices.stop}. */
  worker: ChildProcess;
  /** The worker's output lines so far. */
  output: string[];
  /** The run's pretraining epoch rows, read now. */
  pretrainEpochs(): Promise<EpochMetricRecord[]>;
  /** How many pretraining epochs were stored when `startRun` returned (at least two). */
  before: number;
}

/** The services a fault test runs on: the one it takes away restartable, the others throw-away. */
export interface FaultTestServices<F extends keyof FaultServices> {
  tracking: TrackingStore;
  store: S3ObjectStore;
  /** Settings on these services with a task queue of their own. */
  settings: ServiceSettings;
  /** A client of the Temporal server; its channel reconnects after a restart. */
  client: Client;
  /** The service to take away and bring back. */
  fault: FaultServices[F];
  /** Starts a worker process and `config`'s run on it, and resolves once two pretraining epochs are stored: the moment the fault tests strike. */
  startRun(config: ExperimentConfig): Promise<FaultTestRun>;
  /** Kills the workers, stops everything and deletes the data. */
  stop(): Promise<void>;
}

/** Starts the {@link FaultTestServices} (`name` names the folder, bucket, task queue and workflows) with `fault` restartable. */
export async function startFaultTestServices<F extends keyof FaultServices>(name: string, fault: F): Promise<FaultTestServices<F>> {
  const home = await mkdtemp(path.join(os.tmpdir(), `detl-${name}-`));
  const bucket = `${name}-${randomUUID().slice(0, 8)}`;
  // Each as the value and what ends it; only `fault` is one this process can stop and start again.
  const [temporal, minio, database] = await Promise.all([
    fault === 'temporal' ? startRestartableTemporal().then((t) => ({ address: t.address, restartable: t, end: () => t.destroy() })) : startTestTemporal().then((t) => ({ address: t.address, restartable: null, end: () => t.teardown() })),
    fault === 'minio' ? startRestartableMinio(bucket).then((m) => ({ s3: m.settings, restartable: m, end: () => m.destroy() })) : startTestMinio({ bucket }).then((m) => ({ s3: m.settings, restartable: null, end: () => m.stop() })),
    fault === 'postgres' ? startRestartablePostgres().then((d) => ({ url: d.url, restartable: d, end: () => d.destroy() })) : createTestDatabase().then((d) => ({ url: d.url, restartable: null, end: () => d.drop() })),
  ]);
  // The one that is not null is the one `fault` names.
  const restartable = (temporal.restartable ?? minio.restartable ?? database.restartable) as FaultServices[F];
  const tracking = createTrackingStore(database.url);
  const store = createObjectStore(minio.s3);
  await store.ensureBucket();
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: 'default' });
  const settings: ServiceSettings = {
    home,
    temporal: { address: temporal.address, namespace: 'default', taskQueue: `${name}-${randomUUID()}` },
    databaseUrl: database.url,
    s3: minio.s3,
  };
  const workers: ChildProcess[] = [];
  return {
    tracking,
    store,
    settings,
    client,
    fault: restartable,
    async startRun(config) {
      const output: string[] = [];
      const worker = startWorkerProcess(settings, output);
      workers.push(worker);
      const workflowId = `${name}-${randomUUID()}`;
      const handle = await client.workflow.start(experimentWorkflow, { taskQueue: settings.temporal.taskQueue, workflowId, args: [{ config }] });
      const pretrainEpochs = async () => (await tracking.getExperiment(workflowId))?.epochMetrics.filter((row) => row.task === 'pretrain') ?? [];
      const before = await until('two pretraining epochs', 240_000, async () => {
        const stored = (await pretrainEpochs()).length;
        return stored >= 2 ? stored : null;
      });
      return { workflowId, handle, worker, output, pretrainEpochs, before };
    },
    async stop() {
      await Promise.all(workers.map((worker) => killProcess(worker)));
      await connection.close();
      await tracking.close();
      store.close();
      await Promise.allSettled([temporal.end(), minio.end(), database.end()]);
      await rm(home, { recursive: true, force: true });
    },
  };
}

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
