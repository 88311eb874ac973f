import sharp, { type Sharp } from 'sharp';

/** How images become network input; recorded in every manifest. */
export interface PreprocessOptions {
  /** Side of the square output, in pixels. */
  imageSize: number;
  /** When set, shrink to this many pixels and back up to `imageSize` (removes a resolution shortcut). */
  degradeToPixels: number | null;
}

/**
 * The crop policy, as recorded in manifests: the shorter side is scaled to the target size and the
 * longer side is cropped around the centre — the same as cxr-real's conversion, so its 224 px
 * images are only rescaled, and nothing is padded or stretched.
 */
export const CROP_POLICY = 'centre-crop-to-square';
/** Kernel of the main resize (sharp's default; sharp pre-shrinks large images first). */
export const RESIZE_KERNEL = 'lanczos3';
/** Kernels of the optional degrade round trip: area-like shrink, smooth (bicubic) enlargement. */
export const DEGRADE_KERNELS = { down: 'lanczos3', up: 'cubic' } as const;

/**
 * Decodes a PNG or JPEG (8- or 16-bit, grey, RGB or with alpha) and returns `imageSize`² 8-bit
 * grey pixels, row-major. EXIF orientation is applied and transparency is flattened onto black
 * (as cxr-real's conversion did); 16-bit input is scaled to 8 bits by libvips.
 * @throws Error (sharp's message) when the bytes do not decode; callers attach the file name.
 */
export async function preprocessImage(bytes: Uint8Array, options: PreprocessOptions): Promise<Uint8Array> {
  const { imageSize, degradeToPixels } = options;
  let pixels = await toGrey(
    sharp(bytes, { failOn: 'truncated' })
      .rotate()
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .resize(imageSize, imageSize, { fit: 'cover', position: 'centre', kernel: RESIZE_KERNEL }),
    imageSize,
  );
  if (degradeToPixels !== null && degradeToPixels < imageSize) {
    const small = await toGrey(rawGrey(pixels, imageSize).resize(degradeToPixels, degradeToPixels, { kernel: DEGRADE_KERNELS.down }), degradeToPixels);
    pixels = await toGrey(rawGrey(small, degradeToPixels).resize(imageSize, imageSize, { kernel: DEGRADE_KERNELS.up }), imageSize);
  }
  return pixels;
}

/**
 * Prepares a lesion mask the same geometric way as its image (same crop, same size) and binarises
 * it to 0 / 255, so scores computed against it line up with the network input pixel for pixel.
 */
export async function preprocessMask(bytes: Uint8Array, imageSize: number): Promise<Uint8Array> {
  const grey = await toGrey(sharp(bytes, { failOn: 'truncated' }).resize(imageSize, imageSize, { fit: 'cover', position: 'centre' }), imageSize);
  for (let i = 0; i < grey.length; i += 1) grey[i] = (grey[i] ?? 0) >= 128 ? 255 : 0;
  return grey;
}

function rawGrey(pixels: Uint8Array, size: number): Sharp {
  return sharp(pixels, { raw: { width: size, height: size, channels: 1 } });
}

async function toGrey(pipeline: Sharp, size: number): Promise<Uint8Array> {
  const { data, info } = await pipeline.toColourspace('b-w').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size) throw new Error(`preprocessing produced ${info.width}x${info.height}, expected ${size}x${size}`);
  if (info.channels === 1) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  // Defensive: keep the first channel if libvips ever leaves extra bands.
  const out = new Uint8Array(size * size);
  for (let i = 0; i < out.length; i += 1) out[i] = data[i * info.channels] ?? 0;
  return out;
}
