import { randomUUID } from 'node:crypto';
import { DATA_B_CLASSES, type ExperimentConfig } from '@detl/config';
import { buildModel, saveModelToStore } from '@detl/ml';
import { foldModelPrefix, type S3ObjectStore } from '@detl/storage';
import type { ExperimentRecord, TrackingStore } from '@detl/tracking';

/**
 * Records a succeeded experiment whose fold models are freshly built (untrained) small-vgg nets of
 * the given input sizes, saved in the bucket as a run saves them: what `detl predict` and `detl
 * evaluate` read, without the minutes a real training takes. The backend must be initialised.
 * @param members - networks per fold model (`model.members`; default 1)
 */
export async function recordTrainedRun(
  tracking: TrackingStore,
  store: S3ObjectStore,
  config: ExperimentConfig,
  manifestKey: string,
  foldSizes: number[],
  members = 1,
): Promise<ExperimentRecord> {
  const experiment = await tracking.createExperiment({ workflowId: `detl-cli-test-${randomUUID().slice(0, 8)}`, name: 'cli-test', config, configHash: 'cli-test', seed: config.seed });
  await tracking.markExperimentRunning(experiment.id, { backend: 'wasm' });
  await tracking.setDatasetManifest(experiment.id, manifestKey);
  for (const [fold, size] of foldSizes.entries()) {
    const model = buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: size, channels: 1, numClasses: 4, seed: 10 + fold, members });
    const modelKey = foldModelPrefix(experiment.id, fold);
    await saveModelToStore(model, store, modelKey);
    model.dispose();
    const metrics = { precision: 0.25, recall: 1, f1: 0.4, support: 1 };
    await tracking.recordFold({
      experimentId: experiment.id,
      foldIndex: fold,
      status: 'succeeded',
      trainCount: 12,
      testCount: 4,
      accuracy: 0.25,
      confusionMatrix: [
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
      ],
      report: Object.fromEntries(DATA_B_CLASSES.map((name) => [name, metrics])),
      modelKey,
    });
  }
  return tracking.markExperimentFinished(experiment.id, { status: 'succeeded' });
}
