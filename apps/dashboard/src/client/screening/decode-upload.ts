import { sniffImageType, UploadError, type RgbaImage } from './preprocess';

/** Largest file the page decodes: a chest X-ray PNG is rarely above 10 MB; the limit keeps a stray file from exhausting the tab. */
export const MAX_UPLOAD_BYTES = 40 * 1024 * 1024;
/** Largest decoded image (width × height): 160 MB as RGBA, about what a tab can spare. */
export const MAX_UPLOAD_PIXELS = 40_000_000;

/**
 * Reads and decodes a dropped file in the page: checks size and type first, decodes with the
 * browser's decoder (EXIF orientation applied), and refuses images too large to hold.
 * @throws UploadError with a message for the user; nothing else escapes.
 */
export async function decodeUpload(file: File): Promise<RgbaImage> {
  if (file.size === 0) throw new UploadError(`${file.name} is empty; drop a PNG or JPEG chest X-ray`);
  if (file.size > MAX_UPLOAD_BYTES) {
    throw new UploadError(`${file.name} is ${(file.size / 1024 / 1024).toFixed(1)} MB; the page screens images up to ${MAX_UPLOAD_BYTES / 1024 / 1024} MB`);
  }
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  if (!sniffImageType(head)) throw new UploadError(`${file.name} is not a PNG or JPEG image (its first bytes say otherwise); drop a chest X-ray as .png or .jpg`);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  } catch {
    throw new UploadError(`${file.name} could not be decoded; it may be truncated or corrupt. Export it again as PNG or JPEG`);
  }
  try {
    if (bitmap.width * bitmap.height > MAX_UPLOAD_PIXELS) {
      throw new UploadError(`${file.name} is ${bitmap.width}×${bitmap.height} pixels; the page screens images up to ${(MAX_UPLOAD_PIXELS / 1e6).toFixed(0)} megapixels`);
    }
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext('2d', { willReadFrequently: true });
    if (!context) throw new UploadError('this browser cannot read image pixels (no 2D canvas)');
    context.drawImage(bitmap, 0, 0);
    const { data } = context.getImageData(0, 0, bitmap.width, bitmap.height, { colorSpace: 'srgb' });
    return { width: bitmap.width, height: bitmap.height, data };
  } finally {
    bitmap.close();
  }
}
