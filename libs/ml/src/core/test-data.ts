import type { LabelledImages } from './labelled-images';
import type { TrainingStage } from './train';
import { SeededRandom } from './random';

/**
 * A learnable toy set for tests: class c has a bright square in quadrant c (clockwise from top
 * left) on a noisy background, so up to 4 classes are separable by a tiny CNN in a few epochs.
 */
export function quadrantImages(count: number, size: number, classes: number, seed: number): LabelledImages {
  const rng = new SeededRandom(seed);
  const pixels = new Uint8Array(count * size * size);
  const labels = new Int32Array(count);
  const half = size / 2;
  for (let i = 0; i < count; i += 1) {
    const label = i % classes;
    labels[i] = label;
    const top = label >= 2 ? half : 0;
    const left = label === 1 || label === 2 ? half : 0;
    for (let y = 0; y < size; y += 1) {
      for (let x = 0; x < size; x += 1) {
        const inside = y >= top + 1 && y < top + half - 1 && x >= left + 1 && x < left + half - 1;
        pixels[i * size * size + y * size + x] = Math.round((inside ? 180 : 40) + rng.uniform(-30, 30));
      }
    }
  }
  return { pixels, labels, count, size };
}

/**
 * The training stage the core tests train `quadrantImages` with (Adam at 3e-3 on a cosine schedule,
 * no flips, so the quadrant a class is drawn in stays its own), with `overrides` on top: one
 * definition, so that the tests that compare runs train the same way.
 */
export function testTrainingStage(overrides: Partial<TrainingStage> = {}): TrainingStage {
  return {
    epochs: 2,
    batchSize: 16,
    optimizer: 'adam',
    learningRate: 3e-3,
    momentum: 0.9,
    schedule: 'cosine',
    augmentation: { rotationDegrees: 5, scale: 0.05, horizontalFlip: false },
    ...overrides,
  };
}
