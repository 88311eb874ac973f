import { parseExperimentConfig } from '@detl/config';
import { describe, expect, it } from 'vitest';
import { fitLogistic } from './confounds';
import { loadImages } from './load';
import { sampleDataset } from './sample';
import { temporaryFolder } from './test-support/fixtures';
import { MemoryObjectStore } from '@detl/storage/testing';

/** Mean grey of each cell of a `cells`×`cells` grid: a coarse, position-aware feature vector. */
function pooled(pixels: Uint8Array, size: number, cells: number): number[] {
  const out = new Array<number>(cells * cells).fill(0);
  const factor = size / cells;
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      const cell = Math.floor(y / factor) * cells + Math.floor(x / factor);
      out[cell] = (out[cell] ?? 0) + (pixels[y * size + x] ?? 0) / (factor * factor);
    }
  }
  return out;
}

describe('synthetic lesions are learnable', () => {
  it('a linear model on 8x8 pooled pixels beats chance clearly over the 5 folds', { timeout: 60_000 }, async () => {
    const store = new MemoryObjectStore();
    const config = parseExperimentConfig({ seed: 3, dataset: { source: { kind: 'synthetic', imagesPerClass: 30, pretrainImagesPerClass: 10 }, imageSize: 32 } });
    const { manifest } = await sampleDataset({ config, store, workDir: await temporaryFolder() });
    let correct = 0;
    let total = 0;
    for (let k = 0; k < 5; k += 1) {
      const train = await loadImages(store, manifest, { set: 'B', folds: [0, 1, 2, 3, 4].filter((f) => f !== k) });
      const test = await loadImages(store, manifest, { set: 'B', folds: [k] });
      const features = (d: typeof train): number[][] => Array.from({ length: d.count }, (_, i) => pooled(d.pixels.subarray(i * 1024, (i + 1) * 1024), 32, 8));
      const model = fitLogistic(features(train), Array.from(train.labels), 4);
      features(test).forEach((f, i) => {
        total += 1;
        if (model(f) === test.labels[i]) correct += 1;
      });
    }
    // Chance is 0.25; a CNN sees far more than 64 cell means, so this is a floor, not the target.
    expect(correct / total).toBeGreaterThan(0.55);
  });
});
