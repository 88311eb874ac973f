import path from 'node:path';
import { Context } from '@temporalio/activity';
import { epochMetricsSchema, type ExperimentConfig } from '@detl/config';
import { runTrainingJob, type ModelSpec, type TrainingJob, type TrainingJobEpoch } from '@detl/ml';
import { downloadPrefix, epochCheckpointPrefix, uploadDirectory, type TrainingTarget } from '@detl/storage';
import type { ActivityDependencies, StageAttempt } from './stage-runner';

/** Progress a training activity heartbeats, and resumes from after a retry. */
export interface TrainingHeartbeat {
  epoch: number;
  checkpointKey: string;
}

/** How often a running training activity heartbeats between epochs. */
const HEARTBEAT_INTERVAL_MS = 10_000;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** One training job of a stage, as {@link TrainWithCheckpoints} runs it. */
export interface CheckpointedTraining {
  experimentId: string;
  attempt: StageAttempt;
  /** The attempt's scratch folder. */
  dir: string;
  /** Whose checkpoints these are: the pretraining or one fold. */
  target: TrainingTarget;
  job: DistributiveOmit<TrainingJob, 'outputDir' | 'resumeFrom'>;
}

/**
 * Runs one training job in a child process, uploading each epoch's checkpoint, recording its
 * metrics and heartbeating `{ epoch, checkpointKey }`; on a retry it resumes from the newest
 * checkpoint the last heartbeat or the run record names instead of starting over.
 */
export type TrainWithCheckpoints = (training: CheckpointedTraining) => ReturnType<typeof runTrainingJob>;

/** Builds {@link TrainWithCheckpoints} over the worker's stores. */
export function createCheckpointedTraining({ tracking, store }: Pick<ActivityDependencies, 'tracking' | 'store'>): TrainWithCheckpoints {
  return async ({ experimentId, attempt: { task, attempt }, dir, target, job }) => {
    const context = Context.current();
    // The SDK throttles heartbeats, so a worker killed mid-run may never have sent its last one;
    // the run record's epoch rows are written after each checkpoint upload and are the better source.
    const heartbeat = context.info.heartbeatDetails as TrainingHeartbeat | undefined;
    // Heartbeat at once, carrying the previous attempt's progress, and every 10 s from here on: the
    // resume lookup, the checkpoint download and the child's start-up can together outlast a short
    // heartbeat timeout (15 s) on a loaded machine, which would fail a healthy attempt.
    let lastHeartbeat: TrainingHeartbeat | undefined = heartbeat;
    context.heartbeat(lastHeartbeat);
    // Training runs in a child process, so this loop stays free to prove the worker is alive.
    const ticker = setInterval(() => context.heartbeat(lastHeartbeat), HEARTBEAT_INTERVAL_MS);
    try {
      const recorded = attempt > 1 ? await tracking.latestCheckpoint(experimentId, task) : null;
      const sources = [
        ...(heartbeat?.checkpointKey ? [{ epoch: heartbeat.epoch, checkpointKey: heartbeat.checkpointKey, source: 'heartbeat' }] : []),
        ...(recorded ? [{ epoch: recorded.epoch, checkpointKey: recorded.checkpointKey, source: 'run record' }] : []),
      ];
      const previous = sources.reduce<(typeof sources)[number] | undefined>((best, candidate) => (!best || candidate.epoch > best.epoch ? candidate : best), undefined);
      let resumeFrom: { epoch: number; modelDir: string } | undefined;
      if (previous) {
        const modelDir = await downloadPrefix(store, previous.checkpointKey, path.join(dir, 'resume'));
        resumeFrom = { epoch: previous.epoch, modelDir };
        context.log.info('resuming training from checkpoint', { task, epoch: previous.epoch, checkpoint: previous.checkpointKey, source: previous.source });
      }
      lastHeartbeat = previous && { epoch: previous.epoch, checkpointKey: previous.checkpointKey };
      return await runTrainingJob({ ...job, outputDir: path.join(dir, 'output'), resumeFrom } as TrainingJob, {
        signal: context.cancellationSignal,
        onEpoch: async (metrics: TrainingJobEpoch) => {
          const checkpointKey = epochCheckpointPrefix(experimentId, target, metrics.epoch);
          const stored = await uploadDirectory(store, metrics.checkpointDir, checkpointKey);
          await tracking.recordArtifacts(experimentId, stored.map((object) => ({ ...object, kind: 'checkpoint' as const })));
          await tracking.recordEpoch({
            experimentId,
            task,
            attempt,
            // The epoch fields of the shared schema; the child's local checkpointDir stays here.
            ...epochMetricsSchema.parse(metrics),
            checkpointKey,
          });
          lastHeartbeat = { epoch: metrics.epoch, checkpointKey };
          context.heartbeat(lastHeartbeat);
        },
      });
    } finally {
      clearInterval(ticker);
    }
  };
}

/** The network the configuration asks for, with a given number of output classes. */
export function modelSpecOf(config: ExperimentConfig, numClasses: number): ModelSpec {
  return {
    architecture: config.model.architecture,
    widthMultiplier: config.model.widthMultiplier,
    imageSize: config.dataset.imageSize,
    channels: 1,
    numClasses,
    seed: config.seed,
    // Recorded only for an ensemble, so a single network's spec stays what it was.
    ...(config.model.members > 1 ? { members: config.model.members } : {}),
  };
}
