import { homeOwnedServices, startEmbeddedServices, stopEmbeddedServices, usesEmbeddedServices } from '@detl/services';
import { applyMigrations } from '@detl/tracking';
import { BACKEND_ENV_VARIABLE, nativeBackendProblem } from '@detl/native-tensorflow';
import { CliError } from '../cli-error';
import { loadCliSettings, openRuntime } from '../runtime';

/** `detl services start`: starts the embedded services and leaves them running for later commands. */
export async function startServicesCommand(): Promise<void> {
  const settings = loadCliSettings();
  if (!usesEmbeddedServices(settings)) {
    throw new CliError('the environment points detl at external services (DETL_* variables); there is nothing embedded to start');
  }
  const services = await startEmbeddedServices(settings, { keepAlive: true, homeOwned: homeOwnedServices() });
  const actual = services.settings;
  await applyMigrations(actual.databaseUrl);
  const ui = services.temporal?.uiPort;
  const consolePort = services.s3?.consolePort;
  console.log(`Temporal   ${actual.temporal.address}${ui === undefined ? '' : ` (UI http://127.0.0.1:${ui})`}`);
  console.log(`PostgreSQL ${actual.databaseUrl}`);
  console.log(`S3 (MinIO) ${actual.s3.endpoint} bucket ${actual.s3.bucket}${consolePort === undefined ? '' : ` (console http://127.0.0.1:${consolePort})`}`);
  console.log(`data and logs under ${actual.home} (ports recorded in ${actual.home}/run/*.json); stop with: detl services stop`);
}

/** `detl services stop`: stops services left running by `detl services start`. */
export async function stopServicesCommand(): Promise<void> {
  const settings = loadCliSettings();
  const stopped = await stopEmbeddedServices(settings.home);
  console.log(stopped.length === 0 ? 'no embedded services were running' : `stopped: ${stopped.join(', ')}`);
}

/** `detl db migrate`: applies pending SQL migrations (the same files `prisma migrate deploy` reads). */
export async function migrateCommand(): Promise<void> {
  const runtime = await openRuntime({ temporal: false, s3: false });
  await runtime.close();
  console.log(`database at ${redact(runtime.settings.databaseUrl)} is up to date`);
}

/** Flags of `detl worker`. */
export interface WorkerFlags {
  maxTrainings?: string;
  threads?: string;
  backend?: string;
}

const WORKER_BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

function positiveIntegerFlag(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value)) throw new CliError(`${name} ${value}: expected a positive integer`, 2);
  return value;
}

/** `detl worker`: runs a worker in the foreground until interrupted. */
export async function workerCommand(flags: WorkerFlags = {}): Promise<void> {
  const env: NodeJS.ProcessEnv = {};
  const slots = positiveIntegerFlag('--max-trainings', flags.maxTrainings);
  const threads = positiveIntegerFlag('--threads', flags.threads);
  if (slots) env['DETL_WORKER_SLOTS'] = slots;
  if (threads) env['DETL_TRAINING_THREADS'] = threads;
  if (flags.backend !== undefined) {
    if (!WORKER_BACKENDS.includes(flags.backend)) throw new CliError(`--backend ${flags.backend}: expected one of ${WORKER_BACKENDS.join(', ')}`, 2);
    env[BACKEND_ENV_VARIABLE] = flags.backend;
    const problem = nativeBackendProblem(flags.backend);
    if (problem) throw new CliError(`--backend ${flags.backend} cannot run here: ${problem}`, 2);
  }
  const runtime = await openRuntime({ temporal: true, s3: true });
  try {
    const child = runtime.startLocalWorker('inherit', env);
    const code = await new Promise<number>((resolve) => child.once('exit', (exitCode) => resolve(exitCode ?? 1)));
    if (code !== 0) throw new CliError(`worker exited with code ${code}`, code);
  } finally {
    await runtime.close();
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

