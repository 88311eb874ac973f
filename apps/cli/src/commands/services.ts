import { homeOwnedServices, pinServices, startEmbeddedServices, stopEmbeddedServices, stopIdleWatchdog, usesEmbeddedServices } from '@detl/services';
import { applyMigrations } from '@detl/tracking';
import { CliError } from '../cli-error';
import { loadCliSettings, openRuntime } from '../runtime';

/** `detl services start`: starts the embedded services and leaves them running for later commands. */
export async function startServicesCommand(): Promise<void> {
  const settings = loadCliSettings();
  if (!usesEmbeddedServices(settings)) {
    throw new CliError('the environment points detl at external services (DETL_* variables); there is nothing embedded to start');
  }
  const services = await startEmbeddedServices(settings, { keepAlive: true, homeOwned: homeOwnedServices() });
  // Started on purpose: the idle watchdog of earlier commands must leave them running.
  pinServices(settings.home, true);
  const actual = services.settings;
  await applyMigrations(actual.databaseUrl);
  const ui = services.temporal?.uiPort;
  const consolePort = services.s3?.consolePort;
  console.log(`Temporal   ${actual.temporal.address}${ui === undefined ? '' : ` (UI http://127.0.0.1:${ui})`}`);
  console.log(`PostgreSQL ${actual.databaseUrl}`);
  console.log(`S3 (MinIO) ${actual.s3.endpoint} bucket ${actual.s3.bucket}${consolePort === undefined ? '' : ` (console http://127.0.0.1:${consolePort})`}`);
  console.log(`data and logs under ${actual.home} (ports recorded in ${actual.home}/run/*.json); stop with: detl services stop`);
}

/** `detl services stop`: stops services left running by `detl services start` or by earlier commands. */
export async function stopServicesCommand(): Promise<void> {
  const settings = loadCliSettings();
  pinServices(settings.home, false);
  await stopIdleWatchdog(settings.home);
  const stopped = await stopEmbeddedServices(settings.home);
  console.log(stopped.length === 0 ? 'no embedded services were running' : `stopped: ${stopped.join(', ')}`);
}

/** `detl db migrate`: applies pending SQL migrations (the same files `prisma migrate deploy` reads). */
export async function migrateCommand(): Promise<void> {
  const runtime = await openRuntime({ temporal: false, s3: false });
  await runtime.close();
  console.log(`database at ${redact(runtime.settings.databaseUrl)} is up to date`);
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

