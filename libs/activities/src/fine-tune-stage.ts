import { rm } from 'node:fs/promises';
import path from 'node:path';
import { DATA_B_CLASSES, type EvaluationConfig } from '@detl/config';
import { loadImages, loadManifest } from '@detl/data';
import { summarizeCrossValidation, trainingRuntimeOf, writeLabelledImages } from '@detl/ml';
import { downloadPrefix, foldModelPrefix, foldPredictionsKey, uploadDirectory } from '@detl/storage';
import type { FineTuneFoldInput, FoldResult } from './activity-types';
import { toTrackedReport, type FoldPredictionsFile } from './fold-predictions';
import type { ActivityDependencies, StageRunner } from './stage-runner';
import { modelSpecOf, type TrainWithCheckpoints } from './training-checkpoints';

/**
 * Stage 3 of the paper, DETL fine-tuning, one activity per cross-validation fold: the pretrained
 * base with a new 4-class head, trained on the other folds and evaluated on this one.
 */
export function createFineTuneStage({ tracking, store }: ActivityDependencies, runner: StageRunner, trainWithCheckpoints: TrainWithCheckpoints) {
  return {
    /**
     * DETL fine-tuning of one fold: the pretrained base with a new 4-class head, frozen below the
     * last conv block (per config), trained on the other folds and evaluated on this one.
     */
    async fineTuneFold(input: FineTuneFoldInput): Promise<FoldResult> {
      const { experimentId, config, manifestKey, pretrainedModelPrefix, fold } = input;
      return runner.tracked(experimentId, 'fineTuneFold', fold, async (attempt) => {
        const dir = await runner.scratchDir(experimentId, attempt);
        try {
          const manifest = await loadManifest(store, manifestKey);
          const trainFolds = Array.from({ length: config.dataset.folds }, (_, index) => index).filter((index) => index !== fold);
          const train = await loadImages(store, manifest, { set: 'B', folds: trainFolds });
          const test = await loadImages(store, manifest, { set: 'B', folds: [fold] });
          const trainFile = path.join(dir, 'train.bin');
          const testFile = path.join(dir, 'test.bin');
          await writeLabelledImages(trainFile, train);
          await writeLabelledImages(testFile, test);
          const initialModelDir = pretrainedModelPrefix === null ? null : await downloadPrefix(store, pretrainedModelPrefix, path.join(dir, 'pretrained'));
          const result = await trainWithCheckpoints({
            experimentId,
            attempt,
            dir,
            target: { kind: 'fold', fold },
            job: {
              kind: 'fine-tune',
              backend: config.runtime.backend,
              threads: runner.threadsFor(config),
              architecture: config.model.architecture,
              model: modelSpecOf(config, DATA_B_CLASSES.length),
              numClasses: DATA_B_CLASSES.length,
              stage: config.fineTune,
              freeze: config.fineTune.freeze,
              seed: config.seed + fold + 1,
              trainFile,
              testFile,
              // A run started before the config had an `evaluation` section (in flight on an older workflow input) scores as it did.
              testTimeFlip: (config.evaluation as EvaluationConfig | undefined)?.testTimeFlip ?? false,
              initialModelDir,
            },
          });
          if (!result.test) throw new Error(`${attempt.task}: the training job returned no test evaluation`);
          const { confusionMatrix, predictedClass, probabilities } = result.test;
          const modelPrefix = foldModelPrefix(experimentId, fold);
          const modelObjects = await uploadDirectory(store, result.bestDir, modelPrefix);
          const predictions: FoldPredictionsFile = {
            fold,
            classNames: [...DATA_B_CLASSES],
            imageIds: test.imageIds,
            actual: Array.from(test.labels),
            predicted: Array.from(predictedClass),
            probabilities: probabilities.flat(),
          };
          const predictionsObject = await store.putObject(foldPredictionsKey(experimentId, fold), JSON.stringify(predictions), 'application/json');
          await tracking.recordArtifacts(experimentId, [
            ...modelObjects.map((object) => ({ ...object, kind: 'model' as const })),
            { ...predictionsObject, kind: 'report' as const },
          ]);
          const foldResult: FoldResult = {
            fold,
            accuracy: result.test.accuracy,
            confusionMatrix,
            trainCount: train.count,
            testCount: test.count,
            modelPrefix,
            predictionsKey: predictionsObject.key,
            runtime: trainingRuntimeOf(result.backend),
          };
          await tracking.recordFold({
            experimentId,
            foldIndex: fold,
            status: 'succeeded',
            trainCount: train.count,
            testCount: test.count,
            accuracy: result.test.accuracy,
            confusionMatrix,
            report: toTrackedReport(summarizeCrossValidation([{ actual: predictions.actual, predicted: predictions.predicted }], predictions.classNames, { seed: 1, iterations: 1 }).report),
            modelKey: foldResult.modelPrefix,
          });
          return foldResult;
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    },
  };
}
