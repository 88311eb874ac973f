import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gpuChildEnvironment } from '@detl/native-tensorflow';
import type { ChildMessage, ParentMessage, TrainingJob, TrainingJobEpoch, TrainingJobResult } from './training-job';

/** Options of {@link runTrainingJob}. */
export interface RunTrainingJobOptions {
  /** Awaited per epoch, in order; a rejection kills the child and rejects the job. */
  onEpoch?: (metrics: TrainingJobEpoch) => Promise<void> | void;
  /** Aborting kills the child and rejects with an `AbortError`. */
  signal?: AbortSignal;
  /** Extra environment for the child (e.g. `DETL_TF_BACKEND`). */
  env?: NodeJS.ProcessEnv;
}

/** Raised when the training child fails; carries the child's own error name and stack. */
export class TrainingJobError extends Error {
  override readonly name = 'TrainingJobError';
  constructor(
    message: string,
    /** The child's error class name (e.g. `CheckpointMismatchError`), or null when it crashed. */
    readonly childErrorName: string | null,
    readonly childStack?: string,
  ) {
    super(message);
  }
}

function moduleDir(): string {
  // tsx runs this package as CommonJS (no "type": "module"); vitest runs it as ESM.
  return typeof __dirname !== 'undefined' ? __dirname : new URL('.', import.meta.url).pathname;
}

/** Path of the child entry file, for callers that want to check it exists. */
export const TRAINING_CHILD_ENTRY = join(moduleDir(), 'training-child-entry.ts');

function tsxLoader(): string {
  // Resolved from this package so the child starts whatever the caller's working directory is.
  return pathToFileURL(createRequire(TRAINING_CHILD_ENTRY).resolve('tsx')).href;
}

const STDERR_TAIL = 4000;

/**
 * Runs a training job in a forked child process (`training-child-entry.ts` under tsx), so the
 * CPU-bound training never blocks this process' event loop and two jobs use two cores.
 * Epoch checkpoints land in `job.outputDir/epoch-<n>/`, the kept weights in `best/`.
 * @throws TrainingJobError with the child's message when the child fails or exits non-zero;
 * an `AbortError` when `signal` aborts (the child is killed).
 */
export function runTrainingJob(job: TrainingJob, options: RunTrainingJobOptions = {}): Promise<TrainingJobResult> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(abortError());
  return new Promise<TrainingJobResult>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = fork(TRAINING_CHILD_ENTRY, [], {
        execArgv: ['--import', tsxLoader()],
        stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
        // The GPU build's CUDA libraries that TensorFlow opens by name at run time are found through
        // LD_LIBRARY_PATH, which only a new process reads ({} without a GPU build).
        env: { ...process.env, ...gpuChildEnvironment(), ...options.env },
        serialization: 'advanced',
      });
    } catch (error) {
      reject(error);
      return;
    }
    let settled = false;
    let stderr = '';
    let childError: Extract<ChildMessage, { type: 'error' }> | null = null;
    let result: TrainingJobResult | null = null;
    // Epoch callbacks run one after another; the result waits for all of them.
    let epochs: Promise<void> = Promise.resolve();

    const finish = (error: Error | null, value?: TrainingJobResult) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (error) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        reject(error);
      } else resolve(value as TrainingJobResult);
    };
    const onAbort = () => finish(abortError());
    signal?.addEventListener('abort', onAbort, { once: true });

    child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'epoch') {
        const callback = options.onEpoch;
        if (callback) {
          epochs = epochs.then(() => callback(message.metrics)).catch((error: unknown) => {
            finish(error instanceof Error ? error : new Error(String(error)));
          });
        }
      } else if (message.type === 'result') {
        const test = message.result.test;
        result = { ...message.result, test: test ? { ...test, predictedClass: Int32Array.from(test.predictedClass) } : null };
      } else if (message.type === 'error') {
        childError = message;
      }
    });
    child.on('error', (error) => finish(error));
    child.on('exit', (code, exitSignal) => {
      void epochs.then(() => {
        if (childError) {
          finish(new TrainingJobError(`training child failed: ${childError.message}`, childError.name, childError.stack));
        } else if (code === 0 && result) {
          finish(null, result);
        } else {
          const how = exitSignal ? `was killed by ${exitSignal}` : `exited with code ${code}`;
          const tail = stderr.trim().split('\n').slice(-10).join('\n');
          finish(new TrainingJobError(`training child ${how} without a result${tail ? `; stderr:\n${tail}` : ''}`, null));
        }
      });
    });
    const message: ParentMessage = { type: 'job', job };
    child.send(message, (error) => {
      if (error) finish(error);
    });
  });
}

function abortError(): Error {
  const error = new Error('training job aborted');
  error.name = 'AbortError';
  return error;
}
