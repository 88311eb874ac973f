import { z } from 'zod';
import { experimentConfigSchema, GRAD_CAM_METHOD_BEFORE_OPTION, gradCamMethodSchema } from '@detl/config/experiment-config';

/**
 * What the JSON columns hold: the zod schemas that `json-columns.ts` parses every read with, and
 * their types. Node-free (zod and `@detl/config/experiment-config` only), so the dashboard's
 * browser bundle can name these shapes (`@detl/tracking/json-shapes`) instead of copying them;
 * tools/module-boundaries.test.ts fails if a Node built-in becomes reachable from here.
 */

/** Precision, recall, F1 and support of one class. */
export const classMetricsSchema = z.object({
  precision: z.number(),
  recall: z.number(),
  f1: z.number(),
  /** Number of test images whose true class this is. */
  support: z.number().int().min(0),
});

/** Per-class metrics keyed by class name (`folds.report`, `experiments.summary.perClass`). */
export const classificationReportSchema = z.record(z.string(), classMetricsSchema);

/** A confusion matrix: rows are true classes, columns predictions (`folds.confusion_matrix`). */
export const confusionMatrixSchema = z.array(z.array(z.number().int().min(0)));

/** Held-out accuracy of one (class, source) cell. */
const groupAccuracySchema = z.object({ className: z.string(), source: z.string(), total: z.number().int().min(0), correct: z.number().int().min(0), accuracy: z.number() });

/** Aggregated result of an experiment (`experiments.summary`). */
export const resultSummarySchema = z.object({
  /** Class names in confusion-matrix order. */
  classes: z.array(z.string()),
  /** Test accuracy of each fold, by fold index. */
  foldAccuracies: z.array(z.number()),
  meanAccuracy: z.number(),
  /** Sample standard deviation (n − 1) of the fold accuracies, as the paper's "± std". */
  stdAccuracy: z.number(),
  /** Metrics of the summed confusion matrix. */
  perClass: classificationReportSchema,
  macroF1: z.number(),
  /** Sum of the fold confusion matrices. */
  confusionMatrix: confusionMatrixSchema,
  /** Bootstrap interval of the pooled held-out accuracy. */
  accuracyInterval: z.object({ lower: z.number(), upper: z.number(), level: z.number() }),
  /** One-vs-rest ROC-AUC per class over the pooled held-out probabilities; null where undefined (one class only). */
  rocAuc: z.record(z.string(), z.number().nullable()),
  /** Object-store key of the full report (summary.json). */
  reportKey: z.string(),
  /** Object-store keys of the figures (confusion-matrix heatmap, learning curves). */
  figureKeys: z.array(z.string()),
  /**
   * Pooled held-out accuracy of each (true class, source) cell, and the worst cell of at least
   * `minImages` images: where a source shortcut shows. Absent in runs recorded before it existed.
   */
  perClassSource: z
    .object({
      cells: z.array(groupAccuracySchema),
      worst: groupAccuracySchema.nullable(),
      minImages: z.number().int().min(1),
    })
    .optional(),
  /**
   * Grad-CAM pointing game over the correctly classified lesion images (runs whose data has
   * masks): hits within Zhang et al.'s tolerance (15 px at 224 px, scaled) and exact hits, overall
   * and per class, of the maps `method` made (`gradCam.method`; runs recorded before it existed made
   * Grad-CAM maps, so it reads as `grad-cam` there). Null when nothing could be scored; absent in older runs.
   */
  pointingGame: z
    .object({
      method: gradCamMethodSchema.default(GRAD_CAM_METHOD_BEFORE_OPTION),
      scored: z.number().int().min(0),
      rate: z.number(),
      strictRate: z.number(),
      tolerancePx: z.number(),
      imageSize: z.number().int().positive(),
      perClass: z.record(z.string(), z.object({ scored: z.number().int().min(0), rate: z.number(), strictRate: z.number() })),
    })
    .nullable()
    .optional(),
});

/** Free-form facts about a stage attempt (`stage_attempts.details`): an object, whatever its keys. */
export const attemptDetailsSchema = z.record(z.string(), z.unknown());

/** One planned experiment of a sweep (`sweeps.plan` holds a list of them). */
export const sweepPlanEntrySchema = z.object({
  index: z.number().int().min(0),
  /** Workflow id of the experiment's child workflow. */
  workflowId: z.string(),
  /** Config path → value that make this experiment differ from the sweep's base. */
  overrides: z.record(z.string(), z.unknown()),
});

/** The sweep specification as launched (`sweeps.spec`): validated by @detl/config before it is stored. */
export const sweepSpecColumnSchema = z.record(z.string(), z.unknown());

/**
 * The run's validated configuration (`experiments.config`); defaults added since the run was
 * recorded fill in, except `gradCam.method`: a run recorded before the option existed made its maps
 * with Grad-CAM, so `detl predict` and the dashboard keep explaining it that way rather than with
 * today's default.
 */
export const experimentConfigColumnSchema = z.preprocess((stored) => {
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) return stored;
  const { gradCam } = stored as { gradCam?: unknown };
  if (gradCam === undefined) return { ...stored, gradCam: { method: GRAD_CAM_METHOD_BEFORE_OPTION } };
  if (typeof gradCam === 'object' && gradCam !== null && !('method' in gradCam)) return { ...stored, gradCam: { ...gradCam, method: GRAD_CAM_METHOD_BEFORE_OPTION } };
  return stored;
}, experimentConfigSchema);

/** Precision, recall, F1 and support of one class (schema: `classMetricsSchema`). */
export type ClassMetrics = z.output<typeof classMetricsSchema>;

/** Per-class metrics keyed by class name (`normal`, `pneumonia`, …). */
export type ClassificationReport = z.output<typeof classificationReportSchema>;

/** Aggregated result of an experiment, stored in `experiments.summary` (schema: `resultSummarySchema`). */
export type ResultSummary = z.output<typeof resultSummarySchema>;

/** One planned experiment of a sweep, fixed when the sweep is launched (schema: `sweepPlanEntrySchema`). */
export type SweepPlanEntry = z.output<typeof sweepPlanEntrySchema>;
