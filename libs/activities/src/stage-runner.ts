import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Context, activityInfo } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { STAGES, taskOf, type ExperimentConfig, type ServiceSettings, type StageActivity } from '@detl/config';
import { TrainingJobError } from '@detl/ml';
import type { ObjectStore } from '@detl/storage';
import type { TrackingStore } from '@detl/tracking';
import { NON_RETRYABLE_ERRORS } from './non-retryable';

/** What the activities need from the outside world. */
export interface ActivityDependencies {
  tracking: TrackingStore;
  store: ObjectStore;
  settings: Pick<ServiceSettings, 'home'>;
  /**
   * Threads each training child may use when the config says `runtime.threads: 'auto'`: the
   * worker's cores divided by the trainings it runs at once. Default: every core.
   */
  trainingThreads?: number;
}

/** One attempt of one stage's task, as {@link StageRunner.tracked} hands it to the stage. */
export interface StageAttempt {
  /** The task's name in the run record (`sample`, `pretrain`, `fold-2`, …). */
  task: string;
  /** Temporal's attempt number, from 1. */
  attempt: number;
}

/** What every stage module shares: the attempt bookkeeping, scratch folders and thread choice. */
export interface StageRunner {
  /**
   * Records one attempt of a stage's task around `run`, whatever its outcome. A retry first marks
   * earlier attempts that never recorded an end as abandoned (their worker died).
   *
   * @param fold - the fold, for the per-fold stage
   */
  tracked<T>(experimentId: string, activity: StageActivity, fold: number | undefined, run: (attempt: StageAttempt) => Promise<T>): Promise<T>;
  /** A clean local folder for one attempt of one task; the caller removes it afterwards. */
  scratchDir(experimentId: string, attempt: StageAttempt): Promise<string>;
  /** Threads for one training child: the config's number, or the worker's share for `'auto'`. */
  threadsFor(config: ExperimentConfig): number | undefined;
}

/** Builds the {@link StageRunner} of one worker's activities. */
export function createStageRunner({ tracking, settings, trainingThreads }: ActivityDependencies): StageRunner {
  const scratchRoot = path.join(settings.home, 'scratch');
  return {
    async tracked(experimentId, activity, fold, run) {
      const stage = STAGES[activity].trackingStage;
      const task = taskOf(activity, fold);
      const attempt = activityInfo().attempt;
      if (attempt > 1) {
        await tracking.abandonStaleAttempts({
          experimentId,
          task,
          beforeAttempt: attempt,
          reason: `worker lost: the attempt never recorded an end (process killed or machine gone) and Temporal started attempt ${attempt}`,
        });
      }
      await tracking.startStageAttempt({ experimentId, stage, task, attempt, workerIdentity: workerIdentity() });
      try {
        const result = await run({ task, attempt });
        // The attempt's own result (counts, shard reuse, best epoch, …) goes into the run record, so
        // the history shows what each attempt produced, including cache hits.
        const details = typeof result === 'object' && result !== null ? (result as Record<string, unknown>) : undefined;
        await tracking.finishStageAttempt({ experimentId, task, attempt, status: 'succeeded', details });
        return result;
      } catch (error) {
        const text = error instanceof Error ? error.message : String(error);
        // A cancelled run's attempts say so, rather than showing the abort they died of as a failure;
        // an attempt Temporal gave up on (heartbeat timeout, e.g. across a server restart) says that instead.
        const context = Context.current();
        const message = context.cancellationSignal.aborted ? `${abortReason(context.cancellationDetails)}: ${text}` : text;
        await tracking.finishStageAttempt({ experimentId, task, attempt, status: 'failed', error: message });
        throw surfaceChildError(error);
      }
    },

    async scratchDir(experimentId, { task, attempt }) {
      const dir = path.join(scratchRoot, experimentId, task, `attempt-${attempt}`);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      return dir;
    },

    threadsFor: (config) => (config.runtime.threads === 'auto' ? trainingThreads : config.runtime.threads),
  };
}

/** Why Temporal aborted an attempt, as the prefix of its recorded error. */
function abortReason(details: Context['cancellationDetails']): string {
  if (details?.timedOut || details?.notFound) return 'timed out';
  if (details?.workerShutdown) return 'worker shutting down';
  if (details?.paused) return 'paused';
  if (details?.reset) return 'reset';
  return 'cancelled';
}

/**
 * Errors no retry can fix (bad data, an impossible model spec, a checkpoint of another
 * architecture) leave the activity as non-retryable failures typed by their name, including those
 * raised inside the training child, which arrive wrapped in a TrainingJobError.
 */
function surfaceChildError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const type = error instanceof TrainingJobError && error.childErrorName ? error.childErrorName : error.name;
  if (!NON_RETRYABLE_ERRORS.includes(type)) return error;
  return ApplicationFailure.create({ type, message: error.message, nonRetryable: true, cause: error });
}

function workerIdentity(): string {
  return `${process.pid}@${process.env.HOSTNAME ?? 'localhost'}`;
}
