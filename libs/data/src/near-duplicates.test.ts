import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DatasetError } from './errors';
import { importFolderDataset } from './folder-import';
import {
  checkNearDuplicateLeakage,
  compareFingerprints,
  findNearDuplicatePairs,
  fingerprintImage,
  mergeNearDuplicatePatients,
  NEAR_DUPLICATE_THRESHOLDS,
  type ImageFingerprint,
} from './near-duplicates';
import { entry } from './test-support/catalog-fixtures';
import { sharedDatasetsFolder, texturedPng as picture } from './test-support/fixtures';

/** The alterations a second copy of an image picks up on its way through another collection. */
const ALTERATIONS: Record<string, (bytes: Buffer) => Promise<Buffer>> = {
  'gamma 2.2': (bytes) => sharp(bytes).gamma(2.2, 1).png().toBuffer(),
  'contrast ×1.3, −25': (bytes) => sharp(bytes).linear(1.3, -25).png().toBuffer(),
  'centre crop 5% per side': (bytes) => crop(bytes, 0.05, 0.05, 0.9),
  'crop 10% off top and left': (bytes) => crop(bytes, 0.1, 0.1, 0.9),
  'crop 10% off the top only': async (bytes) => {
    const { width = 0, height = 0 } = await sharp(bytes).metadata();
    return sharp(bytes).extract({ left: 0, top: Math.round(height * 0.1), width, height: Math.round(height * 0.9) }).png().toBuffer();
  },
  'rotated +5°': (bytes) => rotate(bytes, 5),
  'rotated −5°': (bytes) => rotate(bytes, -5),
  'rotated +3° and gamma 1.5': async (bytes) => rotate(await sharp(bytes).gamma(1.5, 1).png().toBuffer(), 3),
  'JPEG re-encoded': (bytes) => sharp(bytes).jpeg({ quality: 70 }).toBuffer(),
};

async function crop(bytes: Buffer, left: number, top: number, share: number): Promise<Buffer> {
  const { width = 0, height = 0 } = await sharp(bytes).metadata();
  return sharp(bytes).extract({ left: Math.round(width * left), top: Math.round(height * top), width: Math.round(width * share), height: Math.round(height * share) }).png().toBuffer();
}

/** Turns the image about its centre and keeps the original frame (black corners, as a scanner copy has). */
async function rotate(bytes: Buffer, degrees: number): Promise<Buffer> {
  const { width = 0, height = 0 } = await sharp(bytes).metadata();
  const turned = await sharp(bytes).rotate(degrees, { background: { r: 0, g: 0, b: 0 } }).png().toBuffer();
  const meta = await sharp(turned).metadata();
  return sharp(turned)
    .extract({ left: Math.floor(((meta.width ?? 0) - width) / 2), top: Math.floor(((meta.height ?? 0) - height) / 2), width, height })
    .png()
    .toBuffer();
}

describe('near-duplicate detector', () => {
  it('finds copies altered in contrast, crop and rotation, and no pair among distinct pictures', { timeout: 120_000 }, async () => {
    const originals = await Promise.all(Array.from({ length: 12 }, (_, i) => picture(i + 1)));
    const fingerprints = await Promise.all(originals.map((bytes) => fingerprintImage(bytes)));
    for (const [name, alter] of Object.entries(ALTERATIONS)) {
      for (const [index, original] of originals.slice(0, 4).entries()) {
        const copy = await fingerprintImage(await alter(original));
        expect(compareFingerprints(fingerprints[index] as ImageFingerprint, copy), `${name} copy of picture ${index + 1}`).not.toBeNull();
      }
    }
    expect(findNearDuplicatePairs(fingerprints.map((fingerprint, i) => ({ imageId: `p${i}`, fingerprint })))).toEqual([]);
  });

  it('reports each pair once, in id order, with its evidence', async () => {
    const original = await picture(3);
    const images = [
      { imageId: 'z/copy', fingerprint: await fingerprintImage(await rotate(original, -4)) },
      { imageId: 'a/original', fingerprint: await fingerprintImage(original) },
      { imageId: 'm/other', fingerprint: await fingerprintImage(await picture(4)) },
    ];
    const pairs = findNearDuplicatePairs(images);
    expect(pairs).toHaveLength(1);
    expect(pairs[0]).toMatchObject({ a: 'a/original', b: 'z/copy' });
    expect(pairs[0]?.hammingDistance).toBeLessThanOrEqual(NEAR_DUPLICATE_THRESHOLDS.maxHammingDistance);
    expect(pairs[0]?.correlation).toBeGreaterThanOrEqual(NEAR_DUPLICATE_THRESHOLDS.minCorrelation);
  });
});

describe('mergeNearDuplicatePatients', () => {
  it('gives every patient linked by pairs, transitively, the smallest id of the group', () => {
    const catalog = [entry('c/1', 'covid', 'p3'), entry('c/2', 'covid', 'p1'), entry('n/1', 'normal', 'p2'), entry('n/2', 'normal', 'p4'), entry('n/3', 'normal', 'p2')];
    const { catalog: merged, merged: groups } = mergeNearDuplicatePatients(catalog, [
      { a: 'c/1', b: 'n/1', hammingDistance: 2, correlation: 0.95 },
      { a: 'c/2', b: 'n/1', hammingDistance: 4, correlation: 0.9 },
    ]);
    expect(merged.map((e) => e.patientId)).toEqual(['p1', 'p1', 'p1', 'p4', 'p1']);
    expect(groups).toEqual([{ patientId: 'p1', members: ['p1', 'p2', 'p3'] }]);
    expect(mergeNearDuplicatePatients(catalog, []).merged).toEqual([]);
  });

  it('rejects a pair naming an image the catalog does not have', () => {
    expect(() => mergeNearDuplicatePatients([entry('a', 'normal', 'p1')], [{ a: 'a', b: 'ghost', hammingDistance: 0, correlation: 1 }])).toThrow(/ghost/);
  });
});

describe('checkNearDuplicateLeakage', () => {
  const pair = { a: 'x', b: 'y', hammingDistance: 3, correlation: 0.93 };
  it('fails when a test image has a near-duplicate in another fold or in Data-A, naming both', () => {
    expect(() => checkNearDuplicateLeakage([{ imageId: 'x', set: 'B', fold: 0 }, { imageId: 'y', set: 'B', fold: 2 }], [pair])).toThrow(DatasetError);
    expect(() => checkNearDuplicateLeakage([{ imageId: 'x', set: 'B', fold: 0 }, { imageId: 'y', set: 'B', fold: 2 }], [pair])).toThrow(/x \(Data-B fold 0\) and y \(Data-B fold 2\)/);
    expect(() => checkNearDuplicateLeakage([{ imageId: 'x', set: 'B', fold: 1 }, { imageId: 'y', set: 'A', split: 'train' }], [pair])).toThrow(/Data-A train/);
  });
  it('passes a pair in one fold, or one whose other copy was not sampled', () => {
    expect(() => checkNearDuplicateLeakage([{ imageId: 'x', set: 'B', fold: 3 }, { imageId: 'y', set: 'B', fold: 3 }], [pair])).not.toThrow();
    expect(() => checkNearDuplicateLeakage([{ imageId: 'x', set: 'B', fold: 3 }], [pair])).not.toThrow();
  });
});

describe('near-duplicate detector on cxr-real', () => {
  const root = path.join(sharedDatasetsFolder(), 'cxr-real');
  it('finds altered copies of real X-rays and no pair among distinct patients of a sample', { timeout: 600_000 }, async (context) => {
    const imported = await importFolderDataset(root, { onCorruptImage: 'fail' }).catch(() => null);
    if (!imported) {
      context.skip(`${root} is absent (set DETL_SHARED_DATASETS to the folder holding cxr-real)`);
      return;
    }
    // Every 36th image: 60 images over all classes and sources, 1,770 pairs minus same-patient ones.
    const sample = imported.catalog.filter((_, index) => index % 36 === 0);
    const fingerprints = await Promise.all(sample.map(async (e) => ({ entry: e, fingerprint: await fingerprintImage(await readFile(e.path)) })));
    let distinct = 0;
    let falsePositives = 0;
    for (let i = 0; i < fingerprints.length; i += 1) {
      for (let j = i + 1; j < fingerprints.length; j += 1) {
        const [x, y] = [fingerprints[i], fingerprints[j]] as [(typeof fingerprints)[number], (typeof fingerprints)[number]];
        if (x.entry.patientId === y.entry.patientId) continue;
        distinct += 1;
        if (compareFingerprints(x.fingerprint, y.fingerprint)) falsePositives += 1;
      }
    }
    let copies = 0;
    let found = 0;
    for (const { entry: original, fingerprint } of fingerprints.slice(0, 20)) {
      for (const alter of Object.values(ALTERATIONS)) {
        copies += 1;
        if (compareFingerprints(fingerprint, await fingerprintImage(await alter(await readFile(original.path))))) found += 1;
      }
    }
    console.info(`cxr-real sample: ${falsePositives} false positives in ${distinct} distinct-patient pairs; ${found} of ${copies} altered copies found`);
    expect(falsePositives).toBe(0);
    expect(found / copies).toBeGreaterThanOrEqual(0.95);
  });
});
