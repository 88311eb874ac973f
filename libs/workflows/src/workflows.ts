import {
  ActivityCancellationType,
  type ActivityOptions,
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  proxyActivities,
  rootCause,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ExperimentConfig, StageActivity } from '@detl/config';
import type { DetlActivities, ExperimentSummary, FoldResult, GradCamResult } from '@detl/activities';
// A plain constant module (no I/O), shared so activities and the retry policy agree on the names.
import { NON_RETRYABLE_ERRORS } from '@detl/activities/non-retryable';

/** Input of {@link experimentWorkflow}: a validated configuration. */
export interface ExperimentWorkflowInput {
  config: ExperimentConfig;
  /**
   * Task queue of the training activities (pretraining, fold fine-tuning): `detl run`, `demo` and
   * `sweep launch` always name one (`DETL_TRAINING_TASK_QUEUE`, default `training`), so training
   * workers scale apart from the main queue's workflow tasks, bookkeeping, data and Grad-CAM.
   * Unset (callers that predate the split), training runs on the workflow's own queue.
   */
  trainingTaskQueue?: string;
  /** The sweep that started this experiment (its child workflow), and the experiment's index in it. */
  sweep?: { id: string; index: number };
  /**
   * A pretrained model to fine-tune instead of pretraining again: a sweep passes the one an
   * experiment with the same data, model, pretraining and seed already trained.
   */
  pretrainedModelPrefix?: string;
}

/** What {@link experimentWorkflow} returns. */
export interface ExperimentWorkflowResult {
  experimentId: string;
  manifestKey: string;
  /** Null when the recipe trains from scratch (`fineTune.freeze: 'scratch'`) and pretraining was skipped. */
  pretrainedModelPrefix: string | null;
  folds: FoldResult[];
  summary: ExperimentSummary;
  gradCams: GradCamResult;
}

/** State of one stage as reported by the {@link progressQuery}. */
export type StageState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

/** Live progress, answered by the workflow at any time without touching the database. */
export interface ExperimentProgress {
  experimentId: string | null;
  /** State per stage, keyed by the stage's activity name (the stage table of `@detl/config`). */
  stages: Record<StageActivity, StageState>;
  /** State per fold, index = fold. */
  folds: StageState[];
  error: string | null;
}

/** Query returning {@link ExperimentProgress}. */
export const progressQuery = defineQuery<ExperimentProgress>('progress');

const retry = { initialInterval: '5s', backoffCoefficient: 2, maximumAttempts: 3, nonRetryableErrorTypes: [...NON_RETRYABLE_ERRORS] };

const bookkeeping = proxyActivities<DetlActivities>({
  startToCloseTimeout: '1 minute',
  retry: { ...retry, maximumAttempts: 10 },
});

const dataStage = proxyActivities<DetlActivities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '2 minutes',
  retry,
});

/**
 * One DETL experiment (Basu, Mitra, Saha 2020): sample Data-A / Data-B, pretrain from scratch on
 * normal-vs-diseased, fine-tune one model per cross-validation fold in parallel, aggregate the
 * confusion matrices, explain predictions with Grad-CAM. Every stage is an activity that records
 * itself in PostgreSQL; the workflow only decides what runs when.
 */
export async function experimentWorkflow(input: ExperimentWorkflowInput): Promise<ExperimentWorkflowResult> {
  const { config } = input;
  const heavy: ActivityOptions = {
    startToCloseTimeout: '24 hours',
    // Training reports after every epoch and every 10 s in between; a silent worker is a dead one.
    heartbeatTimeout: `${config.runtime.heartbeatTimeoutSeconds} seconds`,
    retry,
    // A cancelled run is recorded as cancelled only once its trainings have stopped (the activity
    // learns of the cancellation on its next heartbeat and kills its training child), so the record
    // never says cancelled while something still trains.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
  const training = proxyActivities<DetlActivities>({ ...heavy, taskQueue: input.trainingTaskQueue ?? workflowInfo().taskQueue });
  // Grad-CAM is inference on a few images: it stays on the main queue with the bookkeeping, so the
  // training queue's slots only ever hold trainings.
  const analysis = proxyActivities<DetlActivities>(heavy);
  const progress: ExperimentProgress = {
    experimentId: null,
    stages: { sampleDataset: 'pending', pretrainFromScratch: 'pending', fineTuneFold: 'pending', aggregateResults: 'pending', generateGradCams: 'pending' },
    folds: Array.from({ length: config.dataset.folds }, (): StageState => 'pending'),
    error: null,
  };
  setHandler(progressQuery, () => progress);

  const { experimentId } = await bookkeeping.registerExperiment({ workflowId: workflowInfo().workflowId, config, sweep: input.sweep });
  progress.experimentId = experimentId;

  async function stage<T>(name: keyof ExperimentProgress['stages'], run: () => Promise<T>): Promise<T> {
    progress.stages[name] = 'running';
    try {
      const result = await run();
      progress.stages[name] = 'succeeded';
      return result;
    } catch (error) {
      progress.stages[name] = 'failed';
      throw error;
    }
  }

  function skip(name: keyof ExperimentProgress['stages']): null {
    progress.stages[name] = 'skipped';
    return null;
  }

  try {
    await bookkeeping.markExperimentRunning({ experimentId });
    const sample = await stage('sampleDataset', () => dataStage.sampleDataset({ experimentId, config }));
    // The 4-class scratch baseline of the ablation uses no pretrained weights, so it skips pretraining.
    const pretrainedModelPrefix =
      config.fineTune.freeze === 'scratch'
        ? skip('pretrainFromScratch')
        : input.pretrainedModelPrefix !== undefined
          ? (skip('pretrainFromScratch') ?? input.pretrainedModelPrefix)
          : (await stage('pretrainFromScratch', () => training.pretrainFromScratch({ experimentId, config, manifestKey: sample.manifestKey }))).modelPrefix;
    const folds = await stage('fineTuneFold', () =>
      Promise.all(
        progress.folds.map(async (_, fold) => {
          progress.folds[fold] = 'running';
          try {
            const result = await training.fineTuneFold({
              experimentId,
              config,
              manifestKey: sample.manifestKey,
              pretrainedModelPrefix,
              fold,
            });
            progress.folds[fold] = 'succeeded';
            return result;
          } catch (error) {
            progress.folds[fold] = 'failed';
            throw error;
          }
        }),
      ),
    );
    const summary = await stage('aggregateResults', () => dataStage.aggregateResults({ experimentId, config, folds }));
    const gradCams = await stage('generateGradCams', () =>
      analysis.generateGradCams({ experimentId, config, manifestKey: sample.manifestKey, folds }),
    );
    // The run record's summary also carries the pointing game (null for data without lesion masks),
    // which only the Grad-CAM stage after aggregation can measure.
    const finished = { ...summary, pointingGame: gradCams.pointingGame };
    await bookkeeping.finishExperiment({ experimentId, status: 'succeeded', summary: finished });
    return { experimentId, manifestKey: sample.manifestKey, pretrainedModelPrefix, folds, summary: finished, gradCams };
  } catch (error) {
    const cancelled = isCancellation(error);
    const message = describeFailure(error);
    progress.error = message;
    // The run record must say how it ended even when the workflow itself is being cancelled.
    await CancellationScope.nonCancellable(() =>
      bookkeeping.finishExperiment({ experimentId, status: cancelled ? 'cancelled' : 'failed', error: message }),
    );
    if (error instanceof ApplicationFailure || cancelled) throw error;
    throw ApplicationFailure.nonRetryable(message, 'ExperimentFailed');
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof Error) {
    const cause = rootCause(error);
    return cause && cause !== error.message ? cause : error.message;
  }
  return String(error);
}

export * from './sweep-workflow';
