import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { parseExperimentConfig, serviceEnvironment, type ExperimentConfig, type ServiceSettings } from '@detl/config';

// What the end-to-end tests and the durability bench do with real worker processes and their
// training children: start one, poll for what it records, find its children, kill it.

/** A worker process to start: the worker's entry and the services it runs on. */
export interface WorkerProcessOptions {
  /** The worker's entry (`require.resolve('@detl/worker/main')`); a library does not import an app, so the caller names it. */
  main: string;
  settings: ServiceSettings;
  /** Collects its stdout and stderr lines when given; else its output is discarded. */
  output?: string[];
  /** Adds to or overrides its environment (`DETL_WORKER_SLOTS` is 2 unless set here). */
  env?: NodeJS.ProcessEnv;
}

/** Starts the worker as the real process it is in production (through tsx, as `detl worker` runs it). */
export function startWorkerProcess({ main, settings, output, env = {} }: WorkerProcessOptions): ChildProcess {
  const loader = pathToFileURL(createRequire(main).resolve('tsx')).href;
  const child = spawn(process.execPath, ['--import', loader, main], {
    env: { ...process.env, ...serviceEnvironment(settings), DETL_WORKER_SLOTS: '2', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    // Read even when nobody collects: a full pipe would block the worker.
    stream?.on('data', (chunk: Buffer) => {
      if (!output) return;
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      output.push(...lines);
    });
  }
  return child;
}

/** Kills a process started by a test and waits until it is gone. */
export async function killProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every `intervalMs` until it returns a value (not null or undefined), or fails after `timeoutMs` naming `what`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined> | T | null | undefined, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Pids of the training children (libs/ml's training-child-entry) whose parent is `pid`, from /proc (Linux). */
export function trainingChildren(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The parent pid is the second field after the command name, which may itself hold spaces.
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('training-child-entry')) found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/**
 * A small experiment whose pretraining lasts long enough (seconds per epoch) to be interrupted: what
 * the fault tests and the durability bench stop, kill and cancel mid-run.
 */
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
