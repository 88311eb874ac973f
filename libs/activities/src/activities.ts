import type { StageActivity } from '@detl/config';
import { createAggregateStage } from './aggregate-stage';
import { createExperimentRecord } from './experiment-record';
import { createFineTuneStage } from './fine-tune-stage';
import { createGradCamStage } from './grad-cam-stage';
import { createPretrainStage } from './pretrain-stage';
import { createSampleStage } from './sample-stage';
import { createStageRunner, type ActivityDependencies } from './stage-runner';
import { createCheckpointedTraining } from './training-checkpoints';

export type { ActivityDependencies } from './stage-runner';
export type { TrainingHeartbeat } from './training-checkpoints';
export { hashConfig } from './experiment-record';

/**
 * Builds the DETL activities around their dependencies (the samples-typescript factory pattern),
 * so tests and workers hand in real stores and nothing is reached through globals: the run record's
 * bookkeeping and one module per stage of the paper, which share the attempt bookkeeping
 * ({@link createStageRunner}) and, for the two trainings, the checkpointed training loop.
 */
export function createActivities(dependencies: ActivityDependencies) {
  const runner = createStageRunner(dependencies);
  const trainWithCheckpoints = createCheckpointedTraining(dependencies);
  // The stage table names each stage's activity; this fails to compile when a module misnames one.
  const stages = {
    ...createSampleStage(dependencies, runner),
    ...createPretrainStage(dependencies, runner, trainWithCheckpoints),
    ...createFineTuneStage(dependencies, runner, trainWithCheckpoints),
    ...createAggregateStage(dependencies, runner),
    ...createGradCamStage(dependencies, runner),
  } satisfies Record<StageActivity, (input: never) => Promise<unknown>>;
  return { ...createExperimentRecord(dependencies), ...stages };
}

/** The activity functions, as workflows see them through `proxyActivities`. */
export type DetlActivities = ReturnType<typeof createActivities>;
