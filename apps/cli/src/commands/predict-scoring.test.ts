import { parseExperimentConfig } from '@detl/config';
import type { ExperimentDetail } from '@detl/tracking';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeScoring, ensembleInputs, gradCamMethodOf, overlayExplainers, scoringOf, type MlModule } from './predict';

// How `detl predict` and `detl evaluate` score images: as the run's own folds were (its config's
// evaluation.testTimeFlip), through libs/ml's one flip-averaging helper. No services needed.

let ml: MlModule;

beforeAll(async () => {
  ml = await import('@detl/ml');
  await ml.initBackend('cpu');
});

describe('scoring of a run', () => {
  it("follows the run's evaluation.testTimeFlip; a model without a run is scored plainly", () => {
    const run = (raw: unknown) => ({ config: parseExperimentConfig(raw) }) as ExperimentDetail;
    expect(scoringOf(null)).toEqual({ testTimeFlip: false });
    expect(scoringOf(run({}))).toEqual({ testTimeFlip: false });
    expect(scoringOf(run({ evaluation: { testTimeFlip: true } }))).toEqual({ testTimeFlip: true });
    expect(describeScoring({ testTimeFlip: true })).toBe(', test-time flip averaged');
    expect(describeScoring({ testTimeFlip: false })).toBe('');
  });

  it("makes the overlays' maps with the run's gradCam.method; a model without a run with the default, Grad-CAM++", () => {
    const run = (raw: unknown) => ({ config: parseExperimentConfig(raw) }) as ExperimentDetail;
    expect(gradCamMethodOf(null)).toBe('grad-cam++');
    expect(gradCamMethodOf(run({}))).toBe('grad-cam++');
    expect(gradCamMethodOf(run({ gradCam: { method: 'grad-cam' } }))).toBe('grad-cam');
    expect(gradCamMethodOf(run({ gradCam: { method: 'hires-cam' } }))).toBe('hires-cam');
    const size = 16;
    const models = [1, 2].map((seed) => ({ model: ml.buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: size, channels: 1, numClasses: 4, seed }) }));
    const image = Uint8Array.from({ length: size * size }, (_, p) => (p % size < size / 2 ? 200 : 30) + (p % 7));
    const explainers = overlayExplainers(ml, models, 'hires-cam');
    expect(explainers.map((explainer) => explainer.method)).toEqual(['hires-cam', 'hires-cam']);
    const reference = models.map(({ model }) => ml.createGradCamExplainer(model, { method: 'hires-cam' }));
    expect(Array.from(ml.ensembleGradCam(explainers, image, size, 1).heatmap)).toEqual(Array.from(ml.ensembleGradCam(reference, image, size, 1).heatmap));
    for (const explainer of [...explainers, ...reference]) explainer.dispose();
    for (const { model } of models) model.dispose();
  });

  it('averages every fold model over each image and its mirror when the run did', () => {
    const size = 16;
    const models = [1, 2].map((seed) => ({ model: ml.buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: size, channels: 1, numClasses: 4, seed }) }));
    // Two images with a bright left half: not left-right symmetric.
    const image = Uint8Array.from({ length: size * size }, (_, p) => (p % size < size / 2 ? 200 : 30) + (p % 7));
    const pixels = [image, image.map((value) => 255 - value)];
    const mirror = (values: Uint8Array) => values.map((_, p) => values[p - (p % size) + size - 1 - (p % size)] as number);
    const plain = ensembleInputs(models, pixels, size, ml, { testTimeFlip: false });
    const mirrored = ensembleInputs(models, pixels.map(mirror), size, ml, { testTimeFlip: false });
    const averaged = ensembleInputs(models, pixels, size, ml, { testTimeFlip: true });
    averaged.forEach((rows, m) =>
      rows.forEach((row, i) => row.forEach((p, c) => expect(p).toBeCloseTo(((plain[m]?.[i]?.[c] as number) + (mirrored[m]?.[i]?.[c] as number)) / 2, 6))),
    );
    expect(Math.max(...plain.flat(2).map((p, k) => Math.abs(p - (mirrored.flat(2)[k] as number))))).toBeGreaterThan(1e-5);
    for (const { model } of models) model.dispose();
  });
});
