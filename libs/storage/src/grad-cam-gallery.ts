import { z } from 'zod';
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from './object-store';
import { gradCamIndexKey } from './storage-layout';

/** Version of the gallery index format written by {@link writeGradCamGallery}. */
export const GRAD_CAM_GALLERY_VERSION = 1;

const galleryEntrySchema = z.strictObject({
  /** The overlay PNG: `experiments/<id>/gradcam/<true class>/<image>-pred-<predicted>.png`. */
  overlayKey: z.string().min(1),
  /** The image's id in the sampling manifest. */
  imageId: z.string().min(1),
  /** The shard holding the image's preprocessed pixels (`shards/<sha256>.u8`) … */
  imageKey: z.string().min(1),
  /** … and the image's position in it. */
  imageIndex: z.number().int().min(0),
  trueClass: z.string().min(1),
  predictedClass: z.string().min(1),
  /** The explaining model's probability of the predicted class, in [0, 1]. */
  probability: z.number().min(0).max(1),
  /** The fold whose model predicted (and explained) the image: the fold that held it out. */
  fold: z.number().int().min(0),
});

const gradCamGallerySchema = z.strictObject({
  format: z.literal('detl-grad-cam-gallery'),
  version: z.literal(GRAD_CAM_GALLERY_VERSION),
  experimentId: z.string().min(1),
  /** Class names in label order. */
  classes: z.array(z.string()),
  /** Share of correctly classified lesion images whose map peaks inside the lesion; null without masks. */
  pointingGameRate: z.number().min(0).max(1).nullable(),
  /** One entry per overlay, in the order they were made (fold by fold). */
  overlays: z.array(galleryEntrySchema),
});

/** What one Grad-CAM overlay of an experiment shows. */
export type GradCamGalleryEntry = z.output<typeof galleryEntrySchema>;
/** The Grad-CAM gallery of one experiment: `experiments/<id>/gradcam/index.json`. */
export type GradCamGallery = z.output<typeof gradCamGallerySchema>;

/** Raised for a gallery index that is not one (another format, a newer version, broken JSON). */
export class GradCamGalleryError extends Error {
  override readonly name = 'GradCamGalleryError';
}

/** Writes an experiment's Grad-CAM gallery index (validated first) and returns the stored object. */
export async function writeGradCamGallery(store: ObjectStore, gallery: Omit<GradCamGallery, 'format' | 'version'>): Promise<StoredObject> {
  const checked = gradCamGallerySchema.parse({ format: 'detl-grad-cam-gallery', version: GRAD_CAM_GALLERY_VERSION, ...gallery });
  return store.putObject(gradCamIndexKey(checked.experimentId), `${JSON.stringify(checked, null, 2)}\n`, 'application/json');
}

/**
 * Reads an experiment's Grad-CAM gallery: per overlay, its key, the image (manifest id, shard and
 * position), true and predicted class, the predicted class's probability and the fold whose model
 * made it.
 *
 * @returns null when the experiment has no gallery (no Grad-CAM stage yet, or a run from before galleries)
 * @throws GradCamGalleryError when the stored index does not parse as a gallery
 */
export async function readGradCamGallery(store: ObjectStore, experimentId: string): Promise<GradCamGallery | null> {
  const key = gradCamIndexKey(experimentId);
  let bytes: Uint8Array;
  try {
    bytes = await store.getObject(key);
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return null;
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new GradCamGalleryError(`${store.uri(key)}: not JSON (${(error as Error).message})`);
  }
  const parsed = gradCamGallerySchema.safeParse(json);
  if (!parsed.success) {
    throw new GradCamGalleryError(`${store.uri(key)}: not a Grad-CAM gallery: ${parsed.error.issues.slice(0, 3).map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
  }
  if (parsed.data.experimentId !== experimentId) throw new GradCamGalleryError(`${store.uri(key)}: gallery of experiment ${parsed.data.experimentId}, not ${experimentId}`);
  return parsed.data;
}
