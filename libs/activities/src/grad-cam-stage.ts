import { Context } from '@temporalio/activity';
import { DATA_B_CLASSES, GRAD_CAM_METHOD_BEFORE_OPTION, type EvaluationConfig, type ExperimentConfig, type GradCamMethod } from '@detl/config';
import { loadImages, loadManifest, loadMasks, selectItems } from '@detl/data';
import { createGradCamExplainer, createGradCamTally, initBackend, loadModelFromStore, pointingGameReport, surveyGradCams, tallyPointingGameRate } from '@detl/ml';
import { gradCamOverlayKey, writeGradCamGallery, type GradCamGalleryEntry, type StoredObject } from '@detl/storage';
import type { ExperimentRef, FoldResult, GradCamResult } from './activity-types';
import { parseFoldPredictions } from './fold-predictions';
import type { ActivityDependencies, StageRunner } from './stage-runner';

/**
 * Stage 5 of the paper, explanation: Grad-CAM overlays of held-out images, each made by the fold
 * model that did not train on the image, the pointing game against lesion masks where the data has
 * them, and the gallery index saying what each overlay shows.
 */
export function createGradCamStage({ tracking, store }: ActivityDependencies, runner: StageRunner) {
  /** The fold's stored held-out probabilities, one row per image, checked to be of `imageIds` in order. */
  const recordedScores = async (fold: FoldResult, imageIds: readonly string[]): Promise<number[][]> => {
    const where = store.uri(fold.predictionsKey);
    const predictions = parseFoldPredictions(await store.getObject(fold.predictionsKey), where);
    if (predictions.imageIds.length !== imageIds.length || predictions.imageIds.some((id, i) => id !== imageIds[i])) {
      throw new Error(`${where}: its images are not fold ${fold.fold}'s held-out images in manifest order`);
    }
    const classes = predictions.classNames.length;
    return imageIds.map((_, i) => predictions.probabilities.slice(i * classes, (i + 1) * classes));
  };
  return {
    /**
     * Grad-CAM overlays for a few held-out images per class, each explained by the model that did
     * not see it in training; scores localisation against lesion masks when the dataset has them.
     * Writes `gradcam/index.json` (read it with `readGradCamGallery` of `@detl/storage`). With
     * `evaluation.testTimeFlip` the predicted class and probability are the fold's recorded
     * (flip-averaged) ones, so the gallery agrees with the fold's confusion matrix; every map is of
     * the image as it is. Maps are made with `gradCam.method`, which the pointing game's report names.
     */
    async generateGradCams({ experimentId, config, manifestKey, folds }: ExperimentRef & { config: ExperimentConfig; manifestKey: string; folds: FoldResult[] }): Promise<GradCamResult> {
      return runner.tracked(experimentId, 'generateGradCams', undefined, async () => {
        const context = Context.current();
        await initBackend(config.runtime.backend);
        const manifest = await loadManifest(store, manifestKey);
        // A config from before gradCam.method (a workflow in flight) made Grad-CAM maps.
        const method = (config.gradCam.method as GradCamMethod | undefined) ?? GRAD_CAM_METHOD_BEFORE_OPTION;
        const tally = createGradCamTally(config.gradCam.imagesPerClass, method);
        // A config from before the evaluation section (a workflow in flight) scored without flips.
        const testTimeFlip = (config.evaluation as EvaluationConfig | undefined)?.testTimeFlip ?? false;
        const stored: StoredObject[] = [];
        const gallery: GradCamGalleryEntry[] = [];
        for (const fold of [...folds].sort((a, b) => a.fold - b.fold)) {
          const selection = { set: 'B' as const, folds: [fold.fold] };
          const items = selectItems(manifest, selection);
          const images = await loadImages(store, manifest, selection);
          const masks = await loadMasks(store, manifest, selection);
          const scores = testTimeFlip ? await recordedScores(fold, images.imageIds) : undefined;
          const model = await loadModelFromStore(store, fold.modelPrefix);
          const explainer = createGradCamExplainer(model, { method });
          try {
            await surveyGradCams({
              explainer,
              images,
              masks,
              tally,
              ...(scores ? { scores } : {}),
              onPick: async (pick) => {
                const trueClass = DATA_B_CLASSES[pick.label] ?? 'unknown';
                const predictedClass = DATA_B_CLASSES[pick.predictedClass] ?? 'unknown';
                const object = await store.putObject(gradCamOverlayKey(experimentId, { trueClass, imageId: pick.imageId, predictedClass }), pick.png, 'image/png');
                stored.push(object);
                // loadImages keeps the manifest's order, so the pick's position names its manifest item.
                const item = items[pick.index];
                if (!item || item.imageId !== pick.imageId) throw new Error(`Grad-CAM pick ${pick.imageId} is not item ${pick.index} of fold ${fold.fold} in ${manifestKey}`);
                gallery.push({
                  overlayKey: object.key,
                  imageId: pick.imageId,
                  imageKey: item.shardKey,
                  imageIndex: item.index,
                  trueClass,
                  predictedClass,
                  // A float32 softmax can land a hair outside [0, 1]; the gallery promises a probability.
                  probability: Math.min(1, Math.max(0, pick.probability)),
                  fold: fold.fold,
                });
              },
              onImage: (index) => context.heartbeat({ fold: fold.fold, index }),
            });
          } finally {
            explainer.dispose();
            model.dispose();
          }
        }
        const pointingGameRate = tallyPointingGameRate(tally);
        const index = await writeGradCamGallery(store, { experimentId, classes: [...DATA_B_CLASSES], pointingGameRate, overlays: gallery });
        await tracking.recordArtifacts(experimentId, [...stored.map((object) => ({ ...object, kind: 'grad_cam' as const })), { ...index, kind: 'report' as const }]);
        return { overlayKeys: stored.map((object) => object.key), galleryKey: index.key, pointingGameRate, pointingGame: pointingGameReport(tally.pointing, [...DATA_B_CLASSES]) };
      });
    },
  };
}
