import { z } from 'zod';

/**
 * Square greyscale images with integer class labels: what libs/data loads and libs/ml trains on.
 * Declared here, the one library both depend on, so the two cannot drift apart.
 */
export interface LabelledImages {
  /** `count × size × size` grey pixels, image after image, each row-major. */
  pixels: Uint8Array;
  /** Class index of each image. */
  labels: Int32Array;
  count: number;
  size: number;
}

/**
 * What one training epoch achieved: produced by libs/ml, recorded by libs/tracking
 * (`epoch_metrics`), served by the dashboard. Parsing strips other keys (a training job's
 * `checkpointDir`), so a metrics object can be passed on as it is.
 */
export const epochMetricsSchema = z.object({
  /** 1-based epoch number within the whole run. */
  epoch: z.number().int().min(0),
  /** Mean training loss over the epoch's (augmented) batches: cross-entropy, label-smoothed and class-weighted when the stage says so. */
  trainLoss: z.number(),
  trainAccuracy: z.number(),
  validationLoss: z.number().nullable(),
  validationAccuracy: z.number().nullable(),
  /** Learning rate at the epoch's first step. */
  learningRate: z.number(),
  durationMs: z.number(),
  /** Training images per second (forward + backward + update, augmentation included). */
  imagesPerSecond: z.number(),
});

/** Metrics of one epoch; see {@link epochMetricsSchema}. */
export type EpochMetrics = z.infer<typeof epochMetricsSchema>;
