import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { detlHomeNotice, findDetlHome, loadServiceSettings, serviceEnvironment, type ServiceSettings } from '@detl/config';
import { homeOwnedServices, servicesIdleTimeoutMs, SERVICES_IDLE_ENV_VARIABLE, startEmbeddedServices, usesEmbeddedServices, type EmbeddedServices } from '@detl/services';
import { CliError } from './cli-error';
import { applyMigrations, createTrackingStore, type TrackingStore } from '@detl/tracking';
import { createObjectStore, type S3ObjectStore } from '@detl/storage';

/** Live connections of one CLI invocation, and whatever it started, to close at the end. */
export interface CliRuntime {
  settings: ServiceSettings;
  tracking: TrackingStore;
  store: S3ObjectStore;
  /** Web UI of the embedded Temporal dev server, when this home runs one and its port is known. */
  temporalUiUrl: string | null;
  /**
   * What happens to the embedded services after this command, for commands that print where to
   * look next (the Temporal UI link stays valid while they run); null on external services.
   */
  servicesAfterExit: string | null;
  /** Temporal client; opened on first use. */
  temporal(): Promise<Client>;
  /**
   * Starts a local worker process, logging to `<home>/logs/worker.log` (or to this terminal with
   * `inherit`); it is stopped by {@link CliRuntime.close}.
   */
  startLocalWorker(output?: 'log' | 'inherit', env?: NodeJS.ProcessEnv): ChildProcess;
  close(): Promise<void>;
}

/**
 * The service settings of this command, telling the user on stderr which home is in use when that
 * is not obvious (run from outside any detl checkout without `DETL_HOME`).
 */
export function loadCliSettings(): ServiceSettings {
  const settings = loadServiceSettings();
  const notice = detlHomeNotice(findDetlHome());
  if (notice !== null) console.error(notice);
  return settings;
}

/**
 * Connects to the configured services, starting the embedded ones (Temporal dev server, MinIO,
 * PGlite) when the environment names none, and applies pending database migrations.
 * @param needs which services this command uses; only those are started.
 */
export async function openRuntime(needs: { temporal: boolean; s3: boolean }): Promise<CliRuntime> {
  let settings = loadCliSettings();
  let embedded: EmbeddedServices | undefined;
  let idleTimeoutMs = 0;
  if (usesEmbeddedServices(settings)) {
    try {
      idleTimeoutMs = servicesIdleTimeoutMs();
    } catch (error) {
      throw new CliError((error as Error).message, 2);
    }
    // Kept up between commands (each start costs seconds), until idle or `detl services stop`.
    embedded = await startEmbeddedServices(settings, {
      temporal: needs.temporal,
      s3: needs.s3,
      postgres: true,
      homeOwned: homeOwnedServices(),
      idleTimeoutMs,
    });
    // The home's services may listen elsewhere than the defaults (another home holds those).
    settings = embedded.settings;
  }
  await applyMigrations(settings.databaseUrl);
  const tracking = createTrackingStore(settings.databaseUrl);
  const store = createObjectStore(settings.s3);
  if (needs.s3) await store.ensureBucket();
  let client: Client | undefined;
  const workers: ChildProcess[] = [];
  const uiPort = embedded?.temporal?.uiPort;
  return {
    settings,
    tracking,
    store,
    temporalUiUrl: uiPort === undefined ? null : `http://127.0.0.1:${uiPort}`,
    servicesAfterExit:
      embedded === undefined
        ? null
        : idleTimeoutMs > 0
          ? `the embedded services of ${settings.home} keep running until no detl command or worker has used them for ${Math.round(idleTimeoutMs / 60_000)} min (${SERVICES_IDLE_ENV_VARIABLE}); stop them now with: detl services stop`
          : `the embedded services of ${settings.home} stop with this command (${SERVICES_IDLE_ENV_VARIABLE}=0)`,
    async temporal() {
      client ??= new Client({
        connection: await Connection.connect({ address: settings.temporal.address }),
        namespace: settings.temporal.namespace,
      });
      return client;
    },
    startLocalWorker(output = 'log', env = {}) {
      const logDir = path.join(settings.home, 'logs');
      mkdirSync(logDir, { recursive: true });
      const log = output === 'inherit' ? 'inherit' : openSync(path.join(logDir, 'worker.log'), 'a');
      // execArgv carries the tsx loader this CLI runs under.
      const child = spawn(process.execPath, [...process.execArgv, require.resolve('@detl/worker/main')], {
        // Exact addresses, so the worker talks to this home's services even when they moved off the defaults.
        env: { ...process.env, ...env, ...serviceEnvironment(settings) },
        // The IPC channel lets the worker notice when this CLI dies, even by SIGKILL, and stop
        // instead of polling the task queue as an orphan.
        stdio: ['ignore', log, log, 'ipc'],
      });
      workers.push(child);
      return child;
    },
    async close() {
      await Promise.all(workers.map((child) => stopChild(child)));
      await client?.connection.close();
      await tracking.close();
      await embedded?.stop();
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}
