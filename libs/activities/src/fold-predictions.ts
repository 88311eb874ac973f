import { z } from 'zod';
import type { ClassificationReport as MlClassificationReport } from '@detl/ml';
import type { ClassificationReport } from '@detl/tracking';

/** Held-out predictions of one fold, as the fine-tuning stage stores them next to its model. */
const foldPredictionsSchema = z.strictObject({
  fold: z.number().int().min(0),
  classNames: z.array(z.string()),
  imageIds: z.array(z.string()),
  actual: z.array(z.number().int().min(0)),
  predicted: z.array(z.number().int().min(0)),
  /** Row-major images × classes softmax probabilities. */
  probabilities: z.array(z.number()),
});

/** Held-out predictions of one fold (`folds/<k>/predictions.json`). */
export type FoldPredictionsFile = z.output<typeof foldPredictionsSchema>;

/**
 * Reads a stored predictions file back, checked: the aggregation must not sum a file of another
 * shape into the paper's numbers.
 *
 * @param where - the key, for the message
 */
export function parseFoldPredictions(bytes: Uint8Array, where: string): FoldPredictionsFile {
  const parsed = foldPredictionsSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
  if (!parsed.success) throw new Error(`${where}: not a fold predictions file: ${parsed.error.issues.slice(0, 3).map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
  return parsed.data;
}

/** The ml library's per-class report in the run record's shape (keyed by class name). */
export function toTrackedReport(report: MlClassificationReport): ClassificationReport {
  return Object.fromEntries(report.perClass.map(({ className, precision, recall, f1, support }) => [className, { precision, recall, f1, support }]));
}
