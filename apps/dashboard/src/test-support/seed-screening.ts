import { DATA_B_CLASSES, parseExperimentConfig } from '@detl/config';
import { sampleDataset } from '@detl/data';
import { buildModel, initBackend, saveModelToStore } from '@detl/ml';
import { foldModelPrefix, writeGradCamGallery, type ObjectStore } from '@detl/storage';
import type { TrackingStore } from '@detl/tracking';
import * as tf from '@tensorflow/tfjs-core';

/** Factor on the seeded fold models' output layer (see {@link seedScreening}). */
const LOGIT_SCALE = 40;

/** Side of the seeded run's images and models. */
export const SCREENING_IMAGE_SIZE = 32;

/**
 * Makes a seeded run screenable and gives it a Grad-CAM gallery, as a real run leaves them: a real
 * sampling of a small synthetic dataset (manifest + shards in `store`, recorded on the run), fold
 * models in the tfjs layers format at the run's fold model keys (untrained small-vgg nets, seeded, so
 * `detl predict` and the browser see the same weights), and the gallery index naming an image of the
 * sampling per overlay. `overlayKeys` are the run's recorded Grad-CAM overlays, one per class in class order.
 */
export async function seedScreening(options: {
  tracking: TrackingStore;
  store: ObjectStore;
  runId: string;
  folds: number;
  overlayKeys: readonly string[];
  workDir: string;
}): Promise<{ manifestKey: string }> {
  const { tracking, store, runId } = options;
  const config = parseExperimentConfig({
    seed: 3,
    dataset: { source: { kind: 'synthetic', imagesPerClass: 5, pretrainImagesPerClass: 5 }, imageSize: SCREENING_IMAGE_SIZE, folds: 2 },
  });
  const sampled = await sampleDataset({ config, store, workDir: options.workDir });
  await tracking.setDatasetManifest(runId, sampled.manifestKey);
  await initBackend('wasm');
  for (let fold = 0; fold < options.folds; fold += 1) {
    const model = buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: SCREENING_IMAGE_SIZE, channels: 1, numClasses: 4, seed: 10 + fold });
    // An untrained net says ~0.25 for every class whatever the image; scaling its logits spreads the
    // probabilities, so a comparison within 1e-3 notices a difference in what reached the net.
    const head = model.layers[model.layers.length - 1];
    head?.setWeights(head.getWeights().map((weights) => tf.tidy(() => tf.mul(weights, LOGIT_SCALE))));
    await saveModelToStore(model, store, foldModelPrefix(runId, fold));
    model.dispose();
  }
  const overlays = DATA_B_CLASSES.map((trueClass, index) => {
    const item = sampled.manifest.items.find((candidate) => candidate.set === 'B' && candidate.className === trueClass);
    if (!item || item.fold === undefined) throw new Error(`the synthetic sampling has no ${trueClass} image`);
    const overlayKey = options.overlayKeys[index];
    if (!overlayKey) throw new Error(`no overlay recorded for ${trueClass}`);
    const predictedClass = /-pred-([a-z_]+)\.png$/.exec(overlayKey)?.[1] ?? trueClass;
    return { overlayKey, imageId: item.imageId, imageKey: item.shardKey, imageIndex: item.index, trueClass, predictedClass, probability: 0.4 + index * 0.1, fold: item.fold };
  });
  const index = await writeGradCamGallery(store, { experimentId: runId, classes: [...DATA_B_CLASSES], pointingGameRate: null, overlays });
  await tracking.recordArtifacts(runId, [{ ...index, kind: 'report' }]);
  return { manifestKey: sampled.manifestKey };
}
