import { DATA_B_CLASSES, type ExperimentConfig } from '@detl/config';
import { loadManifest } from '@detl/data';
import { accuracyByClassAndSource, renderConfusionMatrixPng, renderLearningCurvesPng, summarizeCrossValidation } from '@detl/ml';
import { REPORT_FILES, reportKey, type StoredObject } from '@detl/storage';
import type { EpochMetricRecord } from '@detl/tracking';
import type { ExperimentRef, ExperimentSummary, FoldResult } from './activity-types';
import { parseFoldPredictions, toTrackedReport, type FoldPredictionsFile } from './fold-predictions';
import type { ActivityDependencies, StageRunner } from './stage-runner';

/**
 * Stage 4 of the paper, aggregation: the fold confusion matrices summed, per-fold and mean ± std
 * accuracy, per-class metrics, ROC-AUC, a bootstrap interval and the report's figures.
 */
export function createAggregateStage({ tracking, store }: ActivityDependencies, runner: StageRunner) {
  const stage = {
    /** Sums the fold confusion matrices and reports per-fold and mean ± std accuracy, per-class metrics and figures. */
    async aggregateResults({ experimentId, folds }: ExperimentRef & { config: ExperimentConfig; folds: FoldResult[] }): Promise<ExperimentSummary> {
      return runner.tracked(experimentId, 'aggregateResults', undefined, async () => {
        const classNames = [...DATA_B_CLASSES];
        const ordered = [...folds].sort((a, b) => a.fold - b.fold);
        const predictions: FoldPredictionsFile[] = [];
        for (const fold of ordered) predictions.push(parseFoldPredictions(await store.getObject(fold.predictionsKey), store.uri(fold.predictionsKey)));
        const cv = summarizeCrossValidation(predictions, classNames, { seed: 7, iterations: 2000, level: 0.95 });
        const figures: StoredObject[] = [];
        figures.push(await store.putObject(reportKey(experimentId, REPORT_FILES.confusionMatrix), await renderConfusionMatrixPng(cv.confusionMatrix, classNames), 'image/png'));
        const history = await tracking.getExperiment(experimentId);
        const perClassSource = await classSourceAccuracy(history?.datasetManifestKey ?? null, predictions, classNames);
        const curves = learningCurveSeries(history?.epochMetrics ?? []);
        if (curves.length > 0) {
          const png = await renderLearningCurvesPng(curves, { title: 'Accuracy per epoch (validation for pretraining, training for folds)', yLabel: 'accuracy', yMin: 0, yMax: 1 });
          figures.push(await store.putObject(reportKey(experimentId, REPORT_FILES.learningCurves), png, 'image/png'));
        }
        const summaryWithoutKey = {
          classes: classNames,
          foldAccuracies: cv.foldAccuracies,
          meanAccuracy: cv.accuracy.mean,
          stdAccuracy: cv.accuracy.std,
          confusionMatrix: cv.confusionMatrix,
          perClass: toTrackedReport(cv.report),
          macroF1: cv.report.macroF1,
          accuracyInterval: { lower: cv.accuracyInterval.lower, upper: cv.accuracyInterval.upper, level: cv.accuracyInterval.level },
          rocAuc: Object.fromEntries(classNames.map((name, index) => [name, finiteOrNull(cv.rocAuc?.perClass[index])])),
          figureKeys: figures.map((figure) => figure.key),
          ...(perClassSource ? { perClassSource } : {}),
        };
        const reportObject = await store.putObject(
          reportKey(experimentId, REPORT_FILES.summary),
          JSON.stringify({ ...summaryWithoutKey, foldConfusionMatrices: cv.foldConfusionMatrices, macroRocAuc: finiteOrNull(cv.rocAuc?.macro) }, null, 2),
          'application/json',
        );
        await tracking.recordArtifacts(experimentId, [
          ...figures.map((figure) => ({ ...figure, kind: 'figure' as const })),
          { ...reportObject, kind: 'report' as const },
        ]);
        return { ...summaryWithoutKey, reportKey: reportObject.key };
      });
    },
  };

  /**
   * Pooled held-out accuracy per (true class, source), the sources read from the run's manifest
   * (labels.csv `source`, or the importer's). Null for a run with no recorded manifest.
   * @throws Error naming the image when a prediction's image is not a Data-B item of the manifest
   */
  async function classSourceAccuracy(manifestKey: string | null, predictions: readonly FoldPredictionsFile[], classNames: readonly string[]) {
    if (manifestKey === null) return null;
    const manifest = await loadManifest(store, manifestKey);
    const sourceOf = new Map(manifest.items.filter((item) => item.set === 'B').map((item) => [item.imageId, item.source]));
    const sources = predictions.flatMap((fold) =>
      fold.imageIds.map((imageId) => {
        const source = sourceOf.get(imageId);
        if (source === undefined) throw new Error(`fold ${fold.fold} predicted ${imageId}, which is no Data-B image of ${store.uri(manifestKey)}`);
        return source;
      }),
    );
    return accuracyByClassAndSource(
      predictions.flatMap((fold) => fold.actual),
      predictions.flatMap((fold) => fold.predicted),
      sources,
      classNames,
    );
  }

  return stage;
}

/** One accuracy curve per training task, from each task's newest attempt. */
export function learningCurveSeries(metrics: readonly EpochMetricRecord[]) {
  const newestAttempt = new Map<string, number>();
  for (const metric of metrics) newestAttempt.set(metric.task, Math.max(newestAttempt.get(metric.task) ?? 0, metric.attempt));
  const byTask = new Map<string, { epoch: number; value: number }[]>();
  for (const metric of metrics) {
    if (metric.attempt !== newestAttempt.get(metric.task)) continue;
    const series = byTask.get(metric.task) ?? [];
    series.push({ epoch: metric.epoch, value: metric.validationAccuracy ?? metric.trainAccuracy });
    byTask.set(metric.task, series);
  }
  return [...byTask.entries()].map(([name, points]) => ({ name, points: points.sort((a, b) => a.epoch - b.epoch) }));
}

function finiteOrNull(value: number | undefined): number | null {
  return value === undefined || !Number.isFinite(value) ? null : value;
}
