import { BACKEND_ENV_VARIABLE, nativeBackendProblem } from '@detl/native-tensorflow';
import { BACKEND_PREFERENCES, parseTaskQueueList, TaskQueueNameError } from '@detl/config';
import { CliError } from '../cli-error';
import { configFlagValue } from '../config-options';
import { openRuntime } from '../runtime';

/** Flags of `detl worker`. */
export interface WorkerFlags {
  /** `--queue`, repeatable, each value possibly a comma list. */
  queue?: string[];
  maxTrainings?: string;
  threads?: string;
  backend?: string;
}

/** A worker forces one backend by name; `auto` is what it does without the flag. */
const WORKER_BACKENDS = BACKEND_PREFERENCES.filter((backend) => backend !== 'auto');

function positiveIntegerFlag(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value)) throw new CliError(`${name} ${value}: expected a positive integer`, 2);
  return value;
}

/**
 * The worker process' environment for these flags (`DETL_WORKER_QUEUES`, `DETL_WORKER_SLOTS`,
 * `DETL_TRAINING_THREADS`, the backend variable), every flag checked first.
 * @throws CliError (exit 2) naming the flag that is malformed or cannot work on this machine.
 */
export function workerEnvironment(flags: WorkerFlags): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  if (flags.queue !== undefined && flags.queue.length > 0) {
    try {
      env['DETL_WORKER_QUEUES'] = parseTaskQueueList(flags.queue, '--queue').join(',');
    } catch (error) {
      if (error instanceof TaskQueueNameError) throw new CliError(error.message, 2);
      throw error;
    }
  }
  const slots = positiveIntegerFlag('--max-trainings', flags.maxTrainings);
  // --threads stands for runtime.threads (its numeric range; `auto` is the default without it).
  const threads = flags.threads === undefined ? undefined : configFlagValue('--threads', 'runtime.threads', flags.threads, { numbersOnly: true });
  if (slots) env['DETL_WORKER_SLOTS'] = slots;
  if (threads !== undefined) env['DETL_TRAINING_THREADS'] = String(threads);
  if (flags.backend !== undefined) {
    if (!(WORKER_BACKENDS as readonly string[]).includes(flags.backend)) throw new CliError(`--backend ${flags.backend}: runtime.backend: expected one of ${WORKER_BACKENDS.join(', ')}`, 2);
    env[BACKEND_ENV_VARIABLE] = flags.backend;
    const problem = nativeBackendProblem(flags.backend);
    if (problem) throw new CliError(`--backend ${flags.backend} cannot run here: ${problem}`, 2);
  }
  return env;
}

/** Help of `--queue`. */
export const QUEUE_FLAG_HELP =
  'task queue to poll, repeatable or comma list (default: both): the main queue (DETL_TASK_QUEUE, default detl) runs workflows, bookkeeping, data and Grad-CAM; any other name is a training queue (runs send training to DETL_TRAINING_TASK_QUEUE, default training) that runs only pretraining and fold fine-tuning';

/** `detl worker`: runs a worker in the foreground until interrupted. */
export async function workerCommand(flags: WorkerFlags = {}): Promise<void> {
  const env = workerEnvironment(flags);
  const runtime = await openRuntime({ temporal: true, s3: true });
  try {
    const child = runtime.startLocalWorker('inherit', env);
    const code = await new Promise<number>((resolve) => child.once('exit', (exitCode) => resolve(exitCode ?? 1)));
    if (code !== 0) throw new CliError(`worker exited with code ${code}`, code);
  } finally {
    await runtime.close();
  }
}
