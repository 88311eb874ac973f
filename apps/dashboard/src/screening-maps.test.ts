import { GRAD_CAM_METHODS } from '@detl/config';
import { buildModel, createGradCamExplainer, ensembleGradCam, initBackend } from '@detl/ml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTf, screenImage, type LoadedModel } from './client/screening/ensemble';

// The page's screening explains each fold with libs/ml's explainer (@detl/ml/browser) and averages the
// folds' maps itself. Here, without a browser, that average is held to libs/ml's ensemble map — what
// `detl predict` and the run's gallery draw — for every gradCam.method, on small-vgg fold models and
// tfjs' CPU backend. dashboard-browser.test.ts checks the same in Chromium on a recorded run's models.

const SIZE = 16;
let models: LoadedModel[];

beforeAll(async () => {
  await initBackend('cpu');
  await initTf();
  models = [5, 6].map((seed, fold) => ({ fold, model: buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: SIZE, channels: 1, numClasses: 4, seed }) }));
});

afterAll(() => {
  for (const { model } of models) model.dispose();
});

describe("the page's maps equal libs/ml's", () => {
  it.each(GRAD_CAM_METHODS)('for %s', async (method) => {
    const image = Uint8Array.from({ length: SIZE * SIZE }, (_, p) => ((p % SIZE) - 9) ** 2 + (Math.floor(p / SIZE) - 5) ** 2 < 12 ? 230 : 40 + ((p * 13) % 29));
    const screened = await screenImage(models, image, SIZE, 255, { testTimeFlip: false, gradCamMethod: method });
    const explainers = models.map(({ model }) => createGradCamExplainer(model, { method }));
    const reference = ensembleGradCam(explainers, image, SIZE, screened.predicted);
    explainers.forEach((explainer) => explainer.dispose());
    expect(Math.max(...reference.heatmap)).toBe(1);
    expect(screened.heatmap).toHaveLength(reference.heatmap.length);
    screened.heatmap.forEach((value, p) => expect(value).toBeCloseTo(reference.heatmap[p] as number, 5));
    expect(screened.heatmap.indexOf(1)).toBe(reference.heatmap.indexOf(1));
  });

  it('makes a different map per method, and Grad-CAM without one', async () => {
    const image = Uint8Array.from({ length: SIZE * SIZE }, (_, p) => (p % SIZE < 6 ? 210 : 35) + ((p * 7) % 17));
    const [gradCam, hiRes, plusPlus, unnamed] = await Promise.all([
      screenImage(models, image, SIZE, 255, { testTimeFlip: false, gradCamMethod: 'grad-cam' }),
      screenImage(models, image, SIZE, 255, { testTimeFlip: false, gradCamMethod: 'hires-cam' }),
      screenImage(models, image, SIZE, 255, { testTimeFlip: false, gradCamMethod: 'grad-cam++' }),
      screenImage(models, image, SIZE, 255, { testTimeFlip: false }),
    ]);
    expect(Array.from(unnamed?.heatmap ?? [])).toEqual(Array.from(gradCam?.heatmap ?? []));
    const difference = (a: Float32Array | undefined, b: Float32Array | undefined) => Math.max(...(a ?? []).map((value, p) => Math.abs(value - (b?.[p] ?? 0))));
    expect(difference(hiRes?.heatmap, gradCam?.heatmap)).toBeGreaterThan(0.01);
    expect(difference(plusPlus?.heatmap, gradCam?.heatmap)).toBeGreaterThan(0.01);
    expect(difference(plusPlus?.heatmap, hiRes?.heatmap)).toBeGreaterThan(0.01);
  });
});
