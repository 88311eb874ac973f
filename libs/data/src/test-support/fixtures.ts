import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

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
