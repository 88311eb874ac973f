import { DATA_B_CLASSES } from '@detl/config';
import { z } from 'zod';

/**
 * One image known to the project, whatever importer found it. Labels are always one of the four
 * Data-B classes; Data-A's `diseased` is derived from `other_disease` by the sampler.
 */
export const catalogEntrySchema = z.strictObject({
  /** Stable id within the source, e.g. the file path relative to the dataset root without extension. */
  imageId: z.string().min(1),
  /** Where the image comes from (a repository, a hospital, `synthetic`); used for confound checks. */
  source: z.string().min(1),
  /** Absolute path of the image file on disk. */
  path: z.string().min(1),
  /** Path relative to the dataset root, `/`-separated; what manifests record (absolute paths differ per machine). */
  file: z.string().min(1),
  label: z.enum(DATA_B_CLASSES),
  /** Patient (or merged patient group) the image belongs to; splits never separate one patient's images. */
  patientId: z.string().min(1),
  /** Which experiment set the source assigns the image to, when it says. */
  subset: z.enum(['A', 'B']).optional(),
  /** Projection as the source states it (PA, AP, AP Supine, …). */
  view: z.string().optional(),
  /** True when the original was low-resolution (cxr-real `lowres_source=1`). */
  lowResolution: z.boolean().optional(),
  /** Source findings (NIH labels split on `|`, Cohen `finding`), for finding-level sampling and reports. */
  findings: z.array(z.string()).optional(),
  /** Absolute path of a lesion mask aligned with the image, when the source has one (synthetic data). */
  maskPath: z.string().optional(),
  /** Lower-case hex SHA-256 of the image file's bytes. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** One validated catalog entry. */
export type CatalogEntry = z.output<typeof catalogEntrySchema>;

/** A file an importer left out, and why. */
export interface SkippedFile {
  path: string;
  reason: string;
}

/** Files with identical bytes: the first (in path order) is kept, the others are dropped. */
export interface DuplicateGroup {
  sha256: string;
  kept: string;
  dropped: string[];
  /** True when the copies carry different labels: a label-noise signal worth reading. */
  conflictingLabels: boolean;
}

/** What every importer returns. */
export interface ImportResult {
  catalog: CatalogEntry[];
  skipped: SkippedFile[];
  duplicates: DuplicateGroup[];
  warnings: string[];
}
