import { CROP_POLICY, DEGRADE_KERNELS, preprocessImage, RESIZE_KERNEL } from '@detl/data';
import { MemoryObjectStore } from '@detl/storage/testing';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { PreprocessingJson } from '../api-types';
import { preprocessForRun, sniffImageType, type RgbaImage } from '../client/screening/preprocess';
import { BROWSER_CROP_POLICY, readManifestPreprocessing, ScreeningUnavailableError } from './screening';

// The page's copy of libs/data's sharp preprocessing, run under Node against the original: the
// dashboard may not import libs/data, so this is where the two are held together.

async function rgba(png: Uint8Array): Promise<RgbaImage> {
  const { data, info } = await sharp(png).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8ClampedArray(data.buffer, data.byteOffset, data.byteLength) };
}

/** A grey test picture: a soft disc (a lung field), a bright bar (a rib) and fine noise, `width` × `height`. */
async function picture(width: number, height: number, seed: number): Promise<Uint8Array> {
  const pixels = Buffer.alloc(width * height);
  let state = seed;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      const disc = Math.max(0, 1 - Math.hypot(x - width / 2, y - height / 2) / (Math.min(width, height) / 2));
      const bar = Math.abs(y - height / 3) < height / 20 ? 60 : 0;
      pixels[y * width + x] = Math.min(255, Math.round(40 + 150 * disc + bar + (state % 20)));
    }
  }
  return new Uint8Array(await sharp(pixels, { raw: { width, height, channels: 1 } }).png().toBuffer());
}

const preprocessing = (imageSize: number, degradeToPixels: number | null): PreprocessingJson => ({
  imageSize,
  degradeToPixels,
  crop: CROP_POLICY,
  resizeKernel: RESIZE_KERNEL,
  degradeKernels: { ...DEGRADE_KERNELS },
  scale: 255,
  manifestKey: 'manifests/x.json',
});

describe('the browser preprocessing', () => {
  it('uses the crop policy and kernels libs/data records in manifests', () => {
    expect(BROWSER_CROP_POLICY).toBe(CROP_POLICY);
    expect(RESIZE_KERNEL).toBe('lanczos3');
    expect(DEGRADE_KERNELS).toEqual({ down: 'lanczos3', up: 'cubic' });
  });

  it.each([
    ['a square image shrunk 3x', 96, 96, 32, null],
    ['a landscape image, cover-cropped', 150, 100, 32, null],
    ['a portrait image shrunk to 64 px', 90, 200, 64, null],
    ['a degrade round trip through 16 px', 96, 96, 32, 16],
  ] as const)('matches sharp on %s within 2 grey levels', async (_, width, height, size, degrade) => {
    const png = await picture(width, height, width + height);
    const expected = await preprocessImage(png, { imageSize: size, degradeToPixels: degrade });
    const actual = preprocessForRun(await rgba(png), preprocessing(size, degrade));
    expect(actual).toHaveLength(size * size);
    const differences = Array.from(actual, (value, p) => Math.abs(value - (expected[p] as number)));
    const mean = differences.reduce((sum, value) => sum + value, 0) / differences.length;
    expect(Math.max(...differences)).toBeLessThanOrEqual(2);
    expect(mean).toBeLessThan(0.5);
  });

  it('tells PNG and JPEG from anything else by their first bytes', async () => {
    const png = await picture(8, 8, 1);
    expect(sniffImageType(png)).toBe('png');
    expect(sniffImageType(new Uint8Array(await sharp(png).jpeg().toBuffer()))).toBe('jpeg');
    expect(sniffImageType(new TextEncoder().encode('GIF89a not supported'))).toBeNull();
  });
});

describe('readManifestPreprocessing', () => {
  it('reads size, degrade and kernels from the manifest, and refuses what the browser cannot repeat', async () => {
    const store = new MemoryObjectStore();
    const options = { crop: CROP_POLICY, degradeToPixels: 24, resizeKernel: RESIZE_KERNEL, degradeKernels: DEGRADE_KERNELS };
    await store.putObject('manifests/a.json', JSON.stringify({ format: 'detl-dataset-manifest', imageSize: 64, options, items: [] }), 'application/json');
    const cache = new Map();
    expect(await readManifestPreprocessing(store, 'manifests/a.json', cache)).toMatchObject({ imageSize: 64, degradeToPixels: 24, resizeKernel: 'lanczos3', scale: 255 });
    await store.putObject('manifests/b.json', JSON.stringify({ format: 'detl-dataset-manifest', imageSize: 64, options: { ...options, crop: 'pad-to-square' } }), 'application/json');
    await expect(readManifestPreprocessing(store, 'manifests/b.json', cache)).rejects.toThrow(ScreeningUnavailableError);
    await expect(readManifestPreprocessing(store, 'manifests/missing.json', cache)).rejects.toThrow(/missing from bucket/);
    await expect(readManifestPreprocessing(store, null, cache)).rejects.toThrow(/no sampling manifest/);
  });
});
