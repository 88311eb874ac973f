import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { createRandom } from '../random';

/** A fresh temporary folder for one test. */
export function temporaryFolder(prefix = 'detl-data-'): Promise<string> {
  return mkdtemp(path.join(tmpdir(), prefix));
}

/**
 * A small grey PNG whose pixels depend on `variant`, so fixtures differ in content (identical bytes
 * would be dropped as duplicates).
 */
export function greyPng(variant: number, size = 24): Promise<Buffer> {
  const pixels = new Uint8Array(size * size);
  for (let i = 0; i < pixels.length; i += 1) pixels[i] = (i * 7 + variant * 31) % 256;
  return sharp(pixels, { raw: { width: size, height: size, channels: 1 } }).png().toBuffer();
}

/**
 * A 160 px grey picture with structure at every scale (blobs of 3–33 px, grain), different per
 * seed: distinct pictures for the near-duplicate detector, which synthetic X-rays (one drawn
 * template) are not.
 */
export function texturedPng(seed: number): Promise<Buffer> {
  const random = createRandom(seed, 'near-duplicate-test');
  const size = 160;
  const blobs = Array.from({ length: 40 }, () => ({ x: random() * size, y: random() * size, r: 3 + random() * 30, a: (random() - 0.5) * 160 }));
  const pixels = new Uint8Array(size * size);
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      let value = 128;
      for (const b of blobs) value += b.a * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r));
      pixels[y * size + x] = Math.max(0, Math.min(255, Math.round(value + (random() - 0.5) * 12)));
    }
  }
  return sharp(pixels, { raw: { width: size, height: size, channels: 1 } }).png().toBuffer();
}

/** Writes `files` (relative path → bytes or text) under `root`, creating folders. */
export async function writeTree(root: string, files: Record<string, Uint8Array | string>): Promise<void> {
  for (const [relative, body] of Object.entries(files)) {
    const target = path.join(root, ...relative.split('/'));
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, body);
  }
}

/** Where the shared real datasets live (`DETL_SHARED_DATASETS`, else `<repo>/../shared/datasets`). */
export function sharedDatasetsFolder(): string {
  return process.env.DETL_SHARED_DATASETS ?? path.resolve(__dirname, '../../../../../shared/datasets');
}
