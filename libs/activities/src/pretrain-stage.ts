import { rm } from 'node:fs/promises';
import path from 'node:path';
import { DATA_A_CLASSES, type ExperimentConfig } from '@detl/config';
import { loadImages, loadManifest } from '@detl/data';
import { trainingRuntimeOf, writeLabelledImages } from '@detl/ml';
import { pretrainedModelPrefix, uploadDirectory } from '@detl/storage';
import type { ExperimentRef, PretrainResult } from './activity-types';
import type { ActivityDependencies, StageRunner } from './stage-runner';
import { modelSpecOf, type TrainWithCheckpoints } from './training-checkpoints';

/**
 * Stage 2 of the paper, pretraining from scratch on Data-A (normal vs diseased): a checkpoint per
 * epoch, the best-validation weights kept for fine-tuning.
 */
export function createPretrainStage({ tracking, store }: ActivityDependencies, runner: StageRunner, trainWithCheckpoints: TrainWithCheckpoints) {
  return {
    /** Trains the network from scratch on Data-A (normal vs diseased), keeping the best-validation weights. */
    async pretrainFromScratch({ experimentId, config, manifestKey }: ExperimentRef & { config: ExperimentConfig; manifestKey: string }): Promise<PretrainResult> {
      return runner.tracked(experimentId, 'pretrainFromScratch', undefined, async (attempt) => {
        const dir = await runner.scratchDir(experimentId, attempt);
        try {
          const manifest = await loadManifest(store, manifestKey);
          const trainFile = path.join(dir, 'train.bin');
          const validationFile = path.join(dir, 'validation.bin');
          await writeLabelledImages(trainFile, await loadImages(store, manifest, { set: 'A', split: 'train' }));
          await writeLabelledImages(validationFile, await loadImages(store, manifest, { set: 'A', split: 'validation' }));
          const result = await trainWithCheckpoints({
            experimentId,
            attempt,
            dir,
            target: { kind: 'pretrain' },
            job: {
              kind: 'pretrain',
              backend: config.runtime.backend,
              threads: runner.threadsFor(config),
              model: modelSpecOf(config, DATA_A_CLASSES.length),
              stage: config.pretrain,
              seed: config.seed,
              trainFile,
              validationFile,
            },
          });
          const modelPrefix = pretrainedModelPrefix(experimentId);
          const stored = await uploadDirectory(store, result.bestDir, modelPrefix);
          await tracking.recordArtifacts(experimentId, stored.map((object) => ({ ...object, kind: 'model' as const })));
          await tracking.markExperimentRunning(experimentId, { backend: result.backend.backend });
          return {
            modelPrefix,
            bestEpoch: result.bestEpoch,
            bestValidationAccuracy: result.bestValidationAccuracy,
            epochsRun: result.epochs.length,
            backend: result.backend.backend,
            runtime: trainingRuntimeOf(result.backend),
          };
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    },
  };
}
