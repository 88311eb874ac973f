import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseExperimentConfig } from '@detl/config';
import { describe, expect, it } from 'vitest';
import { importFolderDataset } from './folder-import';
import { loadImages } from './load';
import { sampleDataset } from './sample';
import { sharedDatasetsFolder, temporaryFolder } from './test-support/fixtures';
import { MemoryObjectStore } from '@detl/storage/testing';

const root = path.join(sharedDatasetsFolder(), 'cxr-real');
const present = existsSync(path.join(root, 'labels.csv'));
if (!present) console.warn(`skipping cxr-real tests: ${root} not found (set DETL_SHARED_DATASETS to the folder holding cxr-real)`);

describe.skipIf(!present)('cxr-real (real chest X-rays, read in place)', () => {
  // The near-duplicate search decodes and compares all 2,156 images (minutes on two busy cores).
  it('imports every image with patient groups and sources, then samples leak-free folds', { timeout: 600_000 }, async () => {
    const imported = await importFolderDataset(root, { onCorruptImage: 'fail' });
    expect(imported.catalog).toHaveLength(2156);
    expect(imported.skipped).toEqual([]);
    const counts = Object.fromEntries(['normal', 'pneumonia', 'other_disease', 'covid'].map((c) => [c, imported.catalog.filter((e) => e.label === c).length]));
    expect(counts).toEqual({ normal: 835, pneumonia: 600, other_disease: 400, covid: 321 });
    expect(new Set(imported.catalog.filter((e) => e.label === 'other_disease').map((e) => e.patientId)).size).toBe(87);
    expect(imported.catalog.filter((e) => e.label === 'other_disease').every((e) => e.lowResolution === true)).toBe(true);
    expect(new Set(imported.catalog.map((e) => e.source)).size).toBeGreaterThanOrEqual(4);

    const store = new MemoryObjectStore();
    const config = parseExperimentConfig({ seed: 11, dataset: { source: { kind: 'folder', root }, imageSize: 32, degradeToPixels: 16 } });
    const result = await sampleDataset({ config, store, workDir: await temporaryFolder() });
    expect(result.manifest.options.setAssignment).toBe('patient-share');
    const items = result.manifest.items;
    // pneumonia and covid are never in Data-A; no patient crosses sets or folds (checked again here, independently).
    expect(items.filter((i) => i.set === 'A').every((i) => i.className === 'normal' || i.className === 'diseased')).toBe(true);
    const place = new Map<string, string>();
    for (const item of items) {
      const where = item.set === 'B' ? `B${item.fold}` : 'A';
      expect(place.get(item.patientId) ?? where, item.patientId).toBe(where);
      place.set(item.patientId, where);
    }
    // The measured near-duplicates of cxr-real (README, data section): 4 pairs, each within one patient group.
    const patientOf = new Map(imported.catalog.map((e) => [e.imageId, e.patientId]));
    expect(result.manifest.nearDuplicates.pairs).toHaveLength(4);
    expect(result.manifest.nearDuplicates.pairs.every((pair) => patientOf.get(pair.a) === patientOf.get(pair.b))).toBe(true);
    expect(result.manifest.nearDuplicates.mergedPatients).toEqual([]);
    expect(result.counts.dataB.covid).toBe(321);
    expect(result.counts.dataB.pneumonia).toBe(600);
    const fold = await loadImages(store, result.manifest, { set: 'B', folds: [2] });
    expect(new Set(fold.labels)).toEqual(new Set([0, 1, 2, 3]));
  });
});
