import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { parseExperimentConfig } from '@detl/config';
import { describe, expect, it } from 'vitest';
import { sampleDataset } from './sample';
import { manifestSummary, measurePreprocessing } from './summary';
import { temporaryFolder } from './test-support/fixtures';
import { MemoryObjectStore } from '@detl/storage/testing';

describe('manifestSummary and measurePreprocessing', () => {
  it('counts folds, splits and sources consistently with the sampling result, and times preprocessing', async () => {
    const workDir = await temporaryFolder();
    const config = parseExperimentConfig({ seed: 2, dataset: { source: { kind: 'synthetic', imagesPerClass: 10, pretrainImagesPerClass: 8 }, imageSize: 32 } });
    const result = await sampleDataset({ config, store: new MemoryObjectStore(), workDir });
    const summary = manifestSummary(result.manifest);
    expect(summary.dataB).toHaveLength(5);
    for (const label of ['normal', 'pneumonia', 'other_disease', 'covid']) {
      expect(summary.dataB.reduce((a, fold) => a + (fold[label] ?? 0), 0)).toBe(result.counts.dataB[label]);
    }
    expect(Object.values(summary.dataA.train).reduce((a, b) => a + b, 0)).toBe(result.counts.dataA.train);
    expect(summary.sources).toEqual({ synthetic: { A: 16, B: 40 } });
    expect(summary.shards.bytes).toBe(result.manifest.shards.reduce((a, s) => a + s.sizeBytes, 0));

    const folder = (await readdir(path.join(workDir, 'synthetic')))[0] ?? '';
    const covid = path.join(workDir, 'synthetic', folder, 'covid');
    const files = (await readdir(covid)).slice(0, 5).map((f) => path.join(covid, f));
    const timing = await measurePreprocessing(files, { imageSize: 32, degradeToPixels: null });
    expect(timing.images).toBe(5);
    expect(timing.imagesPerSecond).toBeGreaterThan(0);
  });
});
