import type { PreprocessingJson } from '../../api-types';

// The browser's copy of libs/data's `preprocessImage` (sharp): EXIF orientation, alpha flattened onto
// black, the shorter side scaled to the run's size with the manifest's kernel and the longer side
// cropped around the centre, grey, and the optional degrade round trip. Sharp is native code and
// cannot run in a page; the parameters come from the run's manifest (served by the dashboard), and
// src/server/screening.test.ts checks the result against sharp's; this file is plain TypeScript
// (no DOM) so that test can run it under Node. decode-upload.ts turns a dropped file into pixels.

/** An upload the page refuses, with a message for the user. */
export class UploadError extends Error {
  override readonly name = 'UploadError';
}

/** Decoded RGBA pixels, row-major, not premultiplied. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

type Kernel = { support: number; weight: (x: number) => number };

const sinc = (x: number): number => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));

/** libvips' kernels by the names manifests record (`resizeKernel`, `degradeKernels`). */
const KERNELS: Record<string, Kernel> = {
  lanczos3: { support: 3, weight: (x) => (Math.abs(x) < 3 ? sinc(x) * sinc(x / 3) : 0) },
  lanczos2: { support: 2, weight: (x) => (Math.abs(x) < 2 ? sinc(x) * sinc(x / 2) : 0) },
  // Catmull-Rom (B = 0, C = 0.5): libvips' `cubic`.
  cubic: {
    support: 2,
    weight: (x) => {
      const t = Math.abs(x);
      if (t < 1) return 1.5 * t ** 3 - 2.5 * t ** 2 + 1;
      if (t < 2) return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2;
      return 0;
    },
  },
  linear: { support: 1, weight: (x) => Math.max(0, 1 - Math.abs(x)) },
};

function kernelNamed(name: string): Kernel {
  const kernel = KERNELS[name];
  if (!kernel) throw new UploadError(`the run's images were resized with the "${name}" kernel, which this page does not implement`);
  return kernel;
}

/**
 * Resamples one axis: output sample i is centred on input (i + 0.5) · scale − 0.5 (libvips' centre
 * convention); when shrinking, the kernel is stretched by the scale so every input pixel contributes
 * (the antialiasing libvips' reduce does). Edges repeat the border pixel.
 */
function resampleAxis(source: Float32Array, lines: number, inLength: number, outLength: number, stride: 'rows' | 'columns', kernel: Kernel, offset: number, window: number): Float32Array {
  const scale = window / outLength;
  const stretch = Math.max(1, scale);
  const support = kernel.support * stretch;
  const out = new Float32Array(lines * outLength);
  for (let i = 0; i < outLength; i += 1) {
    // Shrinking samples pixel centres (libvips' reduce); enlarging goes through libvips' affine with an
    // interpolator, which samples at i · scale − 0.5 (measured against sharp in screening.test.ts).
    const centre = scale > 1 ? offset + (i + 0.5) * scale - 0.5 : offset + i * scale - 0.5;
    const first = Math.floor(centre - support) + 1;
    const last = Math.ceil(centre + support) - 1;
    const taps: number[] = [];
    const weights: number[] = [];
    let total = 0;
    for (let j = first; j <= last; j += 1) {
      const w = kernel.weight((j - centre) / stretch);
      if (w === 0) continue;
      taps.push(Math.min(inLength - 1, Math.max(0, j)));
      weights.push(w);
      total += w;
    }
    for (let line = 0; line < lines; line += 1) {
      let sum = 0;
      for (let t = 0; t < taps.length; t += 1) {
        const index = stride === 'rows' ? line * inLength + (taps[t] as number) : (taps[t] as number) * lines + line;
        sum += (source[index] as number) * (weights[t] as number);
      }
      out[stride === 'rows' ? line * outLength + i : i * lines + line] = sum / total;
    }
  }
  return out;
}

/**
 * Resizes a grey image (values 0–255) from the window (x0, y0, w, h) of `source` to out × out with
 * `kernelName`, rounding to 8 bits as sharp's uchar output does.
 */
export function resizeGrey(
  source: Float32Array,
  width: number,
  height: number,
  window: { x: number; y: number; width: number; height: number },
  out: number,
  kernelName: string,
): Uint8Array {
  const kernel = kernelNamed(kernelName);
  const horizontal = resampleAxis(source, height, width, out, 'rows', kernel, window.x, window.width);
  const vertical = resampleAxis(horizontal, out, height, out, 'columns', kernel, window.y, window.height);
  const pixels = new Uint8Array(out * out);
  for (let i = 0; i < pixels.length; i += 1) pixels[i] = Math.min(255, Math.max(0, Math.round(vertical[i] as number)));
  return pixels;
}

const toLinear = (value: number): number => {
  const c = value / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
};
const LINEAR = Float32Array.from({ length: 256 }, (_, value) => toLinear(value));
const fromLinear = (y: number): number => 255 * (y <= 0.0031308 ? 12.92 * y : 1.055 * y ** (1 / 2.4) - 0.055);

/**
 * Grey values of an RGBA image: alpha flattened onto black, then libvips' sRGB → `b-w` (luminance
 * 0.2126 R + 0.7152 G + 0.0722 B in linear light, encoded back to sRGB). A grey pixel keeps its value.
 */
export function greyOf(image: RgbaImage): Float32Array {
  const grey = new Float32Array(image.width * image.height);
  const { data } = image;
  for (let p = 0; p < grey.length; p += 1) {
    const alpha = (data[p * 4 + 3] as number) / 255;
    const r = data[p * 4] as number;
    const g = data[p * 4 + 1] as number;
    const b = data[p * 4 + 2] as number;
    const value = r === g && g === b ? r : fromLinear(0.2126 * (LINEAR[r] as number) + 0.7152 * (LINEAR[g] as number) + 0.0722 * (LINEAR[b] as number));
    grey[p] = value * alpha;
  }
  return grey;
}

/**
 * The network input of one image, as the run's sampling made it: `imageSize`² grey values 0–255.
 * Cover crop: the shorter side is scaled to the size and the longer side cut around the centre.
 */
export function preprocessForRun(image: RgbaImage, preprocessing: PreprocessingJson): Uint8Array {
  if (preprocessing.crop !== 'centre-crop-to-square') throw new UploadError(`the run's crop policy "${preprocessing.crop}" is not one this page implements`);
  const size = preprocessing.imageSize;
  const side = Math.min(image.width, image.height);
  // The square window of the original that the cover-resize keeps, centred (sharp's `centre` gravity).
  const window = { x: (image.width - side) / 2, y: (image.height - side) / 2, width: side, height: side };
  let pixels = resizeGrey(greyOf(image), image.width, image.height, window, size, preprocessing.resizeKernel);
  const degrade = preprocessing.degradeToPixels;
  if (degrade !== null && degrade < size) {
    const full = { x: 0, y: 0, width: size, height: size };
    const small = resizeGrey(Float32Array.from(pixels), size, size, full, degrade, preprocessing.degradeKernels.down);
    pixels = resizeGrey(Float32Array.from(small), degrade, degrade, { x: 0, y: 0, width: degrade, height: degrade }, size, preprocessing.degradeKernels.up);
  }
  return pixels;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** PNG or JPEG by the file's first bytes (a renamed file says nothing by its name or MIME type). */
export function sniffImageType(bytes: Uint8Array): 'png' | 'jpeg' | null {
  if (PNG_SIGNATURE.every((byte, index) => bytes[index] === byte)) return 'png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return null;
}
