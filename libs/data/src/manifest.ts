import { DATA_A_CLASSES, DATA_B_CLASSES } from '@detl/config';
import { z } from 'zod';

/** Version of the manifest format written by this library. */
export const MANIFEST_VERSION = 1;

/** Upper bound on one shard's size; larger partitions are cut into several shards. */
export const MAX_SHARD_BYTES = 64 * 1024 * 1024;

const itemSchema = z.strictObject({
  set: z.enum(['A', 'B']),
  imageId: z.string(),
  /** Data-B: one of DATA_B_CLASSES; Data-A: `normal` or `diseased`. */
  className: z.string(),
  /** Index of `className` in the set's class list (`classes.dataB` or `classes.dataA`). */
  label: z.number().int().min(0),
  patientId: z.string(),
  source: z.string(),
  /** Path relative to the dataset root. */
  file: z.string(),
  /** SHA-256 of the original image file. */
  sourceSha256: z.string(),
  /** Data-B only: cross-validation fold, 0-based. */
  fold: z.number().int().min(0).optional(),
  /** Data-A only. */
  split: z.enum(['train', 'validation']).optional(),
  shardKey: z.string(),
  /** Position of the image inside its shard. */
  index: z.number().int().min(0),
  maskShardKey: z.string().optional(),
  maskIndex: z.number().int().min(0).optional(),
});

const shardSchema = z.strictObject({
  key: z.string(),
  sha256: z.string(),
  count: z.number().int().positive(),
  sizeBytes: z.number().int().positive(),
  kind: z.enum(['images', 'masks']),
  /** `B/fold-<k>`, `A/train` or `A/validation`. */
  partition: z.string(),
});

/**
 * A sampling manifest, stored at `manifests/<sha256 of its bytes>.json`. It is everything needed to
 * read the sampled sets back and to know how they were made. Shards (`shards/<sha256>.u8`) are
 * headerless: `count × imageSize × imageSize` uint8 grey pixels, image after image, each row-major
 * (top row first); a mask shard has the same layout with 0 / 255 pixels.
 */
export const datasetManifestSchema = z.strictObject({
  format: z.literal('detl-dataset-manifest'),
  version: z.literal(MANIFEST_VERSION),
  seed: z.number().int(),
  imageSize: z.number().int().positive(),
  classes: z.strictObject({ dataB: z.array(z.string()), dataA: z.array(z.string()) }),
  /** Every option that shaped the result (config values, crop policy, kernels, assignment rule). */
  options: z.record(z.string(), z.unknown()),
  items: z.array(itemSchema),
  shards: z.array(shardSchema),
  skipped: z.array(z.strictObject({ path: z.string(), reason: z.string() })),
  duplicates: z.array(z.strictObject({ sha256: z.string(), kept: z.string(), dropped: z.array(z.string()), conflictingLabels: z.boolean() })),
  /**
   * Near-duplicate images (the same picture with other bytes: re-encoded, re-contrasted, cropped,
   * slightly rotated) found after preprocessing, and the patient groups merged because of them so
   * no pair spans a split. Absent in manifests written before the detector existed.
   */
  nearDuplicates: z
    .strictObject({
      pairs: z.array(z.strictObject({ a: z.string(), b: z.string(), hammingDistance: z.number().int().min(0), correlation: z.number() })),
      mergedPatients: z.array(z.strictObject({ patientId: z.string(), members: z.array(z.string()) })),
    })
    .default({ pairs: [], mergedPatients: [] }),
});

/** A parsed, validated sampling manifest. */
export type DatasetManifest = z.output<typeof datasetManifestSchema>;
/** One image of a manifest. */
export type ManifestItem = z.output<typeof itemSchema>;
/** One shard of a manifest. */
export type ManifestShard = z.output<typeof shardSchema>;

/** Class lists every manifest records, in label-index order. */
export const MANIFEST_CLASSES = { dataB: [...DATA_B_CLASSES], dataA: [...DATA_A_CLASSES] };
