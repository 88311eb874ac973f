import { ObjectNotFoundError, type ObjectStore } from '@detl/storage';
import { z } from 'zod';
import type { PreprocessingJson } from '../api-types';

/** How a run's images became network input, as its manifest recorded it. */
export type ManifestPreprocessing = PreprocessingJson;

/** The run cannot be screened in the browser (no manifest, or one this dashboard cannot reproduce); the message says why. */
export class ScreeningUnavailableError extends Error {
  override readonly name = 'ScreeningUnavailableError';
}

/**
 * The crop policy the browser reproduces. It is libs/data's `CROP_POLICY`; the dashboard may not
 * import libs/data (sharp), so `screening.test.ts` checks the two are equal.
 */
export const BROWSER_CROP_POLICY = 'centre-crop-to-square';

/** The training code's input normalisation (libs/ml `imagesToTensor`: grey / 255); checked against it in `screening.test.ts`. */
export const PIXEL_SCALE = 255;

// Only the fields preprocessing needs: the manifest's items and shards can be megabytes and are not
// this code's business, so they are not validated here.
const manifestSchema = z.object({
  format: z.literal('detl-dataset-manifest'),
  imageSize: z.number().int().min(8).max(1024),
  options: z.object({
    crop: z.string(),
    degradeToPixels: z.number().int().positive().nullable().optional(),
    resizeKernel: z.string().optional(),
    degradeKernels: z.object({ down: z.string(), up: z.string() }).optional(),
  }),
});

/**
 * Reads the sampling manifest of a run and returns the preprocessing its images had, for the browser
 * to repeat. Kernels absent from older manifests are sharp's defaults the sampling used then
 * (`lanczos3` resize; `lanczos3` down and `cubic` up for the degrade round trip).
 * @throws ScreeningUnavailableError when the run has no manifest, it is missing, or it used a crop
 *   policy this dashboard does not implement.
 */
export async function readManifestPreprocessing(
  store: ObjectStore,
  manifestKey: string | null,
  cache: Map<string, Promise<ManifestPreprocessing>>,
): Promise<ManifestPreprocessing> {
  if (manifestKey === null) throw new ScreeningUnavailableError('records no sampling manifest, so how its images were preprocessed is unknown');
  let pending = cache.get(manifestKey);
  if (!pending) {
    pending = load(store, manifestKey);
    cache.set(manifestKey, pending);
    // A failed read is not remembered: the bucket may be reachable again on the next request.
    pending.catch(() => cache.delete(manifestKey));
  }
  return pending;
}

async function load(store: ObjectStore, manifestKey: string): Promise<ManifestPreprocessing> {
  let bytes: Uint8Array;
  try {
    bytes = await store.getObject(manifestKey);
  } catch (error) {
    if (error instanceof ObjectNotFoundError) throw new ScreeningUnavailableError(`its sampling manifest ${manifestKey} is missing from bucket ${store.bucket}`);
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new ScreeningUnavailableError(`its sampling manifest ${manifestKey} is not JSON`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) throw new ScreeningUnavailableError(`its sampling manifest ${manifestKey} is not a detl manifest (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  const { imageSize, options } = parsed.data;
  if (options.crop !== BROWSER_CROP_POLICY) {
    throw new ScreeningUnavailableError(`its images were cropped with "${options.crop}"; the browser reproduces "${BROWSER_CROP_POLICY}" only`);
  }
  return {
    imageSize,
    degradeToPixels: options.degradeToPixels ?? null,
    crop: options.crop,
    resizeKernel: options.resizeKernel ?? 'lanczos3',
    degradeKernels: options.degradeKernels ?? { down: 'lanczos3', up: 'cubic' },
    scale: PIXEL_SCALE,
    manifestKey,
  };
}
