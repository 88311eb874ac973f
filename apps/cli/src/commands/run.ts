import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { trainingTaskQueueOf, type ExperimentConfig } from '@detl/config';
import { gradCamFolder, parseExperimentKey } from '@detl/storage';
import { experimentWorkflow, progressQuery, type ExperimentWorkflowResult } from '@detl/workflows';
import { BACKEND_ENV_VARIABLE, nativeBackendProblem } from '@detl/native-tensorflow';
import { CliError } from '../cli-error';
import { resolveExperimentConfig, resolveRunConfig, type ExperimentFlags } from '../experiment-input';
import { ProgressView, type TaskRecord } from '../progress-view';
import { formatSummary } from '../report-format';
import { openRuntime, type CliRuntime } from '../runtime';

/** Flags of `detl run` / `detl demo`. */
export interface RunFlags extends ExperimentFlags {
  worker: boolean;
  json?: boolean;
}

const POLL_INTERVAL_MS = 1000;

/**
 * Runs one experiment to the end: services up (embedded unless configured), a local worker unless
 * `--no-worker`, the workflow started and followed live, the results printed and copied locally.
 */
export async function runExperimentCommand(flags: RunFlags, preset: Record<string, unknown> = {}): Promise<void> {
  // Validated before anything starts; a run on a stored manifest is completed from it below.
  const requested = resolveExperimentConfig(flags, preset);
  // The local worker's trainings would each fail on it; say so before anything starts.
  const backendProblem = flags.worker ? nativeBackendProblem(process.env[BACKEND_ENV_VARIABLE]?.trim() || requested.runtime.backend) : null;
  if (backendProblem) throw new CliError(`runtime.backend=${requested.runtime.backend} cannot run on this machine: ${backendProblem}`, 2);
  const runtime = await openRuntime({ temporal: true, s3: true });
  try {
    // Image size and folds of a stored sampling come from its manifest (S3), before the workflow starts.
    const config = await resolveRunConfig(flags, preset, runtime.store);
    if (flags.worker) runtime.startLocalWorker();
    const client = await runtime.temporal();
    const workflowId = `detl-${slug(config.name)}-${randomUUID().slice(0, 8)}`;
    const started = Date.now();
    const handle = await client.workflow.start(experimentWorkflow, {
      taskQueue: runtime.settings.temporal.taskQueue,
      workflowId,
      // Training goes to its own queue, so training workers (other machines, GPUs) can take it.
      args: [{ config, trainingTaskQueue: trainingTaskQueueOf(runtime.settings) }],
    });
    // The UI port is this home's (it moves off 8233 when another home holds it).
    const ui = runtime.temporalUiUrl === null ? '' : ` (Temporal UI: ${runtime.temporalUiUrl}/namespaces/${runtime.settings.temporal.namespace}/workflows/${workflowId})`;
    log(flags, `started workflow ${workflowId}${ui}`);
    const cancel = () => {
      log(flags, 'cancelling the experiment…');
      void handle.cancel();
    };
    process.once('SIGINT', cancel);
    const view = flags.json ? undefined : new ProgressView(config);
    let result: ExperimentWorkflowResult;
    try {
      result = await followUntilDone(runtime, handle, view);
    } catch (error) {
      view?.stop();
      const cause = error instanceof WorkflowFailedError ? describeCause(error) : (error as Error).message;
      throw new CliError(`experiment ${workflowId} failed: ${cause}\nrun record: detl runs show ${workflowId}`);
    } finally {
      process.removeListener('SIGINT', cancel);
    }
    view?.stop();
    const elapsedSeconds = (Date.now() - started) / 1000;
    const localCopy = await copyResultsLocally(runtime, result, config);
    if (flags.json) {
      console.log(JSON.stringify({ workflowId, elapsedSeconds, localCopy, ...result }, null, 2));
    } else {
      console.log(formatSummary(result.summary));
      console.log(`\nGrad-CAM overlays: ${runtime.store.uri(gradCamFolder(result.experimentId))} (${result.gradCams.overlayKeys.length} images)`);
      console.log(`Local copy of figures and overlays: ${localCopy}`);
      console.log(`Run record: experiment ${result.experimentId} in PostgreSQL — detl runs show ${result.experimentId}`);
      console.log(`Experiment time: ${elapsedSeconds.toFixed(0)} s`);
      if (runtime.servicesAfterExit !== null) console.log(`\nServices: ${runtime.servicesAfterExit}`);
    }
  } finally {
    await runtime.close();
  }
}

async function followUntilDone(
  runtime: CliRuntime,
  handle: Awaited<ReturnType<Awaited<ReturnType<CliRuntime['temporal']>>['workflow']['start']>>,
  view: ProgressView | undefined,
): Promise<ExperimentWorkflowResult> {
  const outcome = handle.result() as Promise<ExperimentWorkflowResult>;
  let done = false;
  outcome.then(
    () => (done = true),
    () => (done = true),
  );
  while (!done && view) {
    try {
      const progress = await handle.query(progressQuery);
      const record: TaskRecord = progress.experimentId ? await taskRecord(runtime, progress.experimentId) : { started: new Set(), epochs: new Map() };
      view.update(progress, record);
    } catch {
      // Progress is best effort: the workflow may not have started on a worker yet.
    }
    await Promise.race([outcome.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS))]);
  }
  const result = await outcome;
  if (view) {
    const progress = await handle.query(progressQuery);
    view.update(progress, await taskRecord(runtime, result.experimentId));
  }
  return result;
}

/** Which tasks have started and how many epochs each finished (newest attempt only). */
async function taskRecord(runtime: CliRuntime, experimentId: string): Promise<TaskRecord> {
  const experiment = await runtime.tracking.getExperiment(experimentId);
  const newest = new Map<string, { attempt: number; epochs: number }>();
  for (const metric of experiment?.epochMetrics ?? []) {
    const current = newest.get(metric.task);
    if (!current || metric.attempt > current.attempt) newest.set(metric.task, { attempt: metric.attempt, epochs: metric.epoch });
    else if (metric.attempt === current.attempt) current.epochs = Math.max(current.epochs, metric.epoch);
  }
  return {
    started: new Set((experiment?.stageAttempts ?? []).map((attempt) => attempt.task)),
    epochs: new Map([...newest].map(([task, { epochs }]) => [task, epochs])),
  };
}

/** Copies the figures, summary and Grad-CAM overlays next to the user, for opening without S3 tools. */
async function copyResultsLocally(runtime: CliRuntime, result: ExperimentWorkflowResult, config: ExperimentConfig): Promise<string> {
  const dir = path.join(runtime.settings.home, 'runs', `${slug(config.name)}-${result.experimentId}`);
  const keys = [result.summary.reportKey, ...result.summary.figureKeys, ...result.gradCams.overlayKeys, result.gradCams.galleryKey];
  for (const key of keys) {
    // The copy keeps each object's path inside the experiment's folder (report/…, gradcam/…).
    const inside = parseExperimentKey(key);
    if (!inside) throw new Error(`${key}: not an object of experiment ${result.experimentId}`);
    const target = path.join(dir, ...inside.path.split('/'));
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, await runtime.store.getObject(key));
  }
  return dir;
}

function describeCause(error: WorkflowFailedError): string {
  let cause: unknown = error.cause;
  let message = error.message;
  while (cause instanceof Error) {
    message = cause.message;
    cause = cause.cause;
  }
  return message;
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'experiment';
}

function log(flags: RunFlags, message: string): void {
  if (flags.json) console.error(message);
  else console.log(message);
}
