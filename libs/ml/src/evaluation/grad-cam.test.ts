import { GRAD_CAM_METHODS } from '@detl/config';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { camWeights, createGradCamExplainer } from './grad-cam';
import { pointingGame } from './localization';
import { createSeededRandom } from './metrics';
import { BACKEND_UNDER_TEST, initBackendUnderTest } from '../test-support/backend-under-test';

// The reference backend is cpu (float32 JavaScript kernels); the native suite runs the same checks on TensorFlow.
const REFERENCE_BACKEND = BACKEND_UNDER_TEST === 'tensorflow' ? 'tensorflow' : 'cpu';

beforeAll(async () => {
  if (REFERENCE_BACKEND === 'tensorflow') await initBackendUnderTest();
  else await tf.setBackend('cpu');
});

const SIZE = 8;

function randomImage(seed: number, size = SIZE): Uint8Array {
  const random = createSeededRandom(seed);
  return Uint8Array.from({ length: size * size }, () => Math.floor(random() * 256));
}

function seeded(seed: number) {
  return tfl.initializers.glorotUniform({ seed });
}

/** conv → conv 'last' (tanh) → max-pool → flatten → dense (tanh) → dropout → dense softmax. */
function denseHeadModel(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: seeded(1), name: 'c1' }),
      tfl.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'tanh', kernelInitializer: seeded(2), biasInitializer: 'ones', name: 'last' }),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'pool' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 6, activation: 'tanh', kernelInitializer: seeded(3), name: 'fc1' }),
      tfl.layers.dropout({ rate: 0.5, name: 'drop' }),
      tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: seeded(4), biasInitializer: 'ones', name: 'out' }),
    ],
  });
}

/** The head after 'last', written out by hand, ending in the pre-softmax logits. */
function handLogits(model: tfl.LayersModel, features: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    let h = model.getLayer('pool').apply(features) as tf.Tensor;
    h = model.getLayer('flat').apply(h) as tf.Tensor;
    h = model.getLayer('fc1').apply(h) as tf.Tensor;
    const [kernel, bias] = model.getLayer('out').getWeights();
    return tf.add(tf.matMul(h as tf.Tensor2D, kernel as tf.Tensor2D), bias as tf.Tensor) as tf.Tensor2D;
  });
}

describe('createGradCamExplainer', () => {
  it('differentiates the pre-softmax score: gradients match central finite differences', () => {
    const model = denseHeadModel();
    const explainer = createGradCamExplainer(model);
    expect(explainer.layerName).toBe('last');
    const pixels = randomImage(11);
    for (const classIndex of [0, 2]) {
      const { features, gradients, shape, score } = explainer.gradients(pixels, SIZE, classIndex);
      expect(shape).toEqual([SIZE, SIZE, 3]);
      const scoreAt = (values: Float32Array): number =>
        tf.tidy(() => handLogits(model, tf.tensor4d(values, [1, ...shape])).dataSync()[classIndex] as number);
      expect(scoreAt(features)).toBeCloseTo(score, 5);
      const eps = 1e-3;
      const maxGrad = Math.max(...gradients.map(Math.abs));
      expect(maxGrad).toBeGreaterThan(1e-3);
      const tolerance = 2e-3 + 1e-2 * maxGrad;
      const base = scoreAt(features);
      let worst = 0;
      let kinks = 0;
      for (let i = 0; i < features.length; i++) {
        const plus = Float32Array.from(features);
        const minus = Float32Array.from(features);
        plus[i] = (plus[i] as number) + eps;
        minus[i] = (minus[i] as number) - eps;
        const up = scoreAt(plus);
        const down = scoreAt(minus);
        // Max-pooling makes y piecewise smooth; where a step crosses a pooling tie the one-sided
        // slopes disagree and no finite difference measures the derivative. Such points must be rare.
        if (Math.abs((up - base) / eps - (base - down) / eps) > tolerance) {
          kinks++;
          continue;
        }
        worst = Math.max(worst, Math.abs((up - down) / (2 * eps) - (gradients[i] as number)));
      }
      expect(kinks).toBeLessThanOrEqual(2);
      expect(worst).toBeLessThan(tolerance);
    }
  });

  it('computes ReLU(Σ_k mean(∂y/∂A^k) A^k), upsampled and scaled to [0, 1]', () => {
    const model = denseHeadModel();
    const explainer = createGradCamExplainer(model);
    const pixels = randomImage(5);
    const { features, gradients, shape, classIndex } = explainer.gradients(pixels, SIZE, 1);
    const [h, w, k] = shape;
    const weights = new Array<number>(k).fill(0);
    for (let i = 0; i < h * w; i++) for (let c = 0; c < k; c++) weights[c] = (weights[c] as number) + (gradients[i * k + c] as number) / (h * w);
    const cam = new Float32Array(h * w);
    for (let i = 0; i < h * w; i++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += (weights[c] as number) * (features[i * k + c] as number);
      cam[i] = Math.max(0, s);
    }
    const up = tf.tidy(() => tf.image.resizeBilinear(tf.tensor4d(cam, [1, h, w, 1]), [SIZE, SIZE], false, true).dataSync());
    const max = Math.max(...up);
    const result = explainer.explain(pixels, SIZE, 1);
    expect(result.classIndex).toBe(classIndex);
    expect(result.heatmap).toHaveLength(SIZE * SIZE);
    if (max === 0) {
      expect(Math.max(...result.heatmap)).toBe(0);
    } else {
      result.heatmap.forEach((v, i) => expect(v).toBeCloseTo((up[i] as number) / max, 5));
      expect(Math.max(...result.heatmap)).toBeCloseTo(1, 6);
      const peak = result.heatmap[result.peak.y * SIZE + result.peak.x] as number;
      expect(peak).toBe(Math.max(...result.heatmap));
    }
    expect(Math.min(...result.heatmap)).toBeGreaterThanOrEqual(0);
  });

  it('feeds pixels / 255 and reports the model probabilities and predicted class', () => {
    const model = denseHeadModel();
    const explainer = createGradCamExplainer(model);
    const pixels = randomImage(3);
    const expected = tf.tidy(() =>
      Array.from((model.predict(tf.div(tf.tensor4d(pixels, [1, SIZE, SIZE, 1], 'float32'), 255)) as tf.Tensor).dataSync()),
    );
    const result = explainer.explain(pixels, SIZE);
    result.probabilities.forEach((p, i) => expect(p).toBeCloseTo(expected[i] as number, 5));
    expect(result.classIndex).toBe(expected.indexOf(Math.max(...expected)));
  });

  it('repeats the grey image into every channel of a 3-channel model, as training does', () => {
    const rgb = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [SIZE, SIZE, 3], filters: 2, kernelSize: 3, activation: 'relu', kernelInitializer: seeded(5), name: 'c' }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 2, kernelInitializer: seeded(6) }),
      ],
    });
    const pixels = randomImage(8);
    const grey = Array.from(pixels, (p) => p / 255);
    const expected = tf.tidy(() => {
      const image = tf.tensor4d(grey.flatMap((v) => [v, v, v]), [1, SIZE, SIZE, 3]);
      return Array.from(tf.softmax(rgb.predict(image) as tf.Tensor2D).dataSync());
    });
    const result = createGradCamExplainer(rgb).explain(pixels, SIZE);
    result.probabilities.forEach((p, i) => expect(p).toBeCloseTo(expected[i] as number, 5));
  });

  it('leaks no tensors over repeated calls', () => {
    const model = denseHeadModel();
    const explainer = createGradCamExplainer(model);
    const pixels = randomImage(4);
    explainer.explain(pixels, SIZE);
    explainer.gradients(pixels, SIZE, 0);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      explainer.explain(pixels, SIZE);
      explainer.explain(pixels, SIZE, i % 3);
      explainer.gradients(pixels, SIZE, 1);
    }
    expect(tf.memory().numTensors).toBe(before);
    explainer.dispose();
    expect(() => explainer.explain(pixels, SIZE)).toThrow(/disposed/);
    // The model is untouched by the explainer's disposal.
    expect(() => tf.tidy(() => model.predict(tf.zeros([1, SIZE, SIZE, 1])))).not.toThrow();
  });

  it('explains the rectified maps of conv → BatchNorm → ReLU with a GAP head and Activation(softmax)', () => {
    const input = tfl.input({ shape: [SIZE, SIZE, 1] });
    let x = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: seeded(7), name: 'conv' }).apply(input) as tfl.SymbolicTensor;
    x = tfl.layers.batchNormalization({ name: 'bn' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.activation({ activation: 'relu', name: 'relu' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.dense({ units: 2, kernelInitializer: seeded(8), name: 'logits' }).apply(x) as tfl.SymbolicTensor;
    const output = tfl.layers.activation({ activation: 'softmax', name: 'softmax' }).apply(x) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: output });
    const explainer = createGradCamExplainer(model);
    expect(explainer.layerName).toBe('relu');
    const pixels = randomImage(9);
    const { features, gradients, score } = explainer.gradients(pixels, SIZE, 1);
    // GAP then a linear layer: ∂y/∂A^k_{hw} = W[k][1] / (H·W) everywhere, and y is the logit.
    const [kernel, bias] = model.getLayer('logits').getWeights();
    const W = (kernel as tf.Tensor).arraySync() as number[][];
    for (let i = 0; i < gradients.length; i++) expect(gradients[i]).toBeCloseTo((W[i % 4]?.[1] as number) / (SIZE * SIZE), 6);
    let expectedScore = (bias as tf.Tensor).dataSync()[1] as number;
    for (let i = 0; i < features.length; i++) expectedScore += ((features[i] as number) * (W[i % 4]?.[1] as number)) / (SIZE * SIZE);
    expect(score).toBeCloseTo(expectedScore, 5);
    expect(Math.min(...features)).toBeGreaterThanOrEqual(0);
  });

  it('moves past a residual Add to the block output, and refuses a layer that the skip bypasses', () => {
    const input = tfl.input({ shape: [SIZE, SIZE, 1] });
    const a = tfl.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: seeded(1), name: 'a' }).apply(input) as tfl.SymbolicTensor;
    const b = tfl.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same', kernelInitializer: seeded(2), name: 'b' }).apply(a) as tfl.SymbolicTensor;
    let x = tfl.layers.add({ name: 'sum' }).apply([a, b]) as tfl.SymbolicTensor;
    x = tfl.layers.reLU({ name: 'block_out' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.globalMaxPooling2d({ name: 'gmp' }).apply(x) as tfl.SymbolicTensor;
    const output = tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: seeded(3), name: 'out' }).apply(x) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: output });
    expect(createGradCamExplainer(model).layerName).toBe('block_out');
    expect(createGradCamExplainer(model, { lastConvLayerName: 'sum' }).layerName).toBe('sum');
    expect(() => createGradCamExplainer(model, { lastConvLayerName: 'b' })).toThrow(/reaches the output without passing 'b'/);
    const result = createGradCamExplainer(model).explain(randomImage(2), SIZE, 0);
    expect(result.heatmap).toHaveLength(SIZE * SIZE);
  });

  it('puts the peak of each feature cell on the input pixels that cell covers, border cells included', () => {
    // small-vgg's geometry with identity weights: 3x3 'same' convs and three 2x2 max-pools take 64 px
    // to an 8 × 8 map, the explained conv copies it, and y1 = Σ A, so the map is the pooled image
    // itself: one hot cell for a bright dot at that cell's centre.
    const size = 64;
    const identity = (name: string) => tfl.layers.conv2d({ filters: 1, kernelSize: 3, padding: 'same', activation: 'relu', name });
    const model = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [size, size, 1], filters: 1, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' }),
        tfl.layers.maxPooling2d({ poolSize: 2, name: 'p1' }),
        identity('c2'),
        tfl.layers.maxPooling2d({ poolSize: 2, name: 'p2' }),
        identity('c3'),
        tfl.layers.maxPooling2d({ poolSize: 2, name: 'p3' }),
        identity('feat'),
        tfl.layers.flatten({ name: 'flat' }),
        tfl.layers.dense({ units: 2, name: 'out' }),
      ],
    });
    const centre = tf.tensor4d([0, 0, 0, 0, 1, 0, 0, 0, 0], [3, 3, 1, 1]);
    for (const name of ['c1', 'c2', 'c3', 'feat']) model.getLayer(name).setWeights([centre, tf.zeros([1])]);
    model.getLayer('out').setWeights([tf.tensor2d(Array.from({ length: 64 }, () => [0, 1])), tf.zeros([2])]);
    const explainer = createGradCamExplainer(model);
    expect(explainer.layerName).toBe('feat');
    const cell = size / 8;
    for (let row = 0; row < 8; row++) {
      for (let col = 0; col < 8; col++) {
        // A dot of radius 1.6 px around the cell's centre, (col + 0.5) · 8 − 0.5 in pixel indices.
        const cx = (col + 0.5) * cell - 0.5;
        const cy = (row + 0.5) * cell - 0.5;
        const pixels = new Uint8Array(size * size);
        const dot = new Uint8Array(size * size);
        for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= 1.6 ** 2) pixels[y * size + x] = dot[y * size + x] = 255;
        const result = explainer.explain(pixels, size, 1);
        const where = `cell (${row}, ${col}): peak (${result.peak.x}, ${result.peak.y})`;
        expect(Math.hypot(result.peak.x - cx, result.peak.y - cy), where).toBeLessThanOrEqual(Math.SQRT1_2);
        expect(pointingGame(result.heatmap, dot, size), where).toMatchObject({ hit: true, peak: result.peak, distancePx: 0 });
      }
    }
    centre.dispose();
  });

  it('rejects wrong inputs clearly', () => {
    const explainer = createGradCamExplainer(denseHeadModel());
    expect(() => explainer.explain(new Uint8Array(10), SIZE)).toThrow(/64 pixels/);
    expect(() => explainer.explain(new Uint8Array(16), 4)).toThrow(/takes 8 px/);
    expect(() => explainer.explain(randomImage(1), SIZE, 3)).toThrow(/classIndex 3/);
    const twoChannel = tfl.sequential({ layers: [tfl.layers.conv2d({ inputShape: [4, 4, 2], filters: 1, kernelSize: 1 }), tfl.layers.flatten(), tfl.layers.dense({ units: 2 })] });
    expect(() => createGradCamExplainer(twoChannel)).toThrow(/1 or 3/);
    const noConv = tfl.sequential({ layers: [tfl.layers.flatten({ inputShape: [4, 4, 1] }), tfl.layers.dense({ units: 2 })] });
    expect(() => createGradCamExplainer(noConv)).toThrow(/no Conv2D/);
  });
});

/**
 * The hand-checkable case where Grad-CAM's channel means cancel: a 4 × 4 image → 1×1 conv, 2 filters
 * (A^0 = x, A^1 = x / 2, x = pixels / 255) → Flatten → Dense, class 1's weights per channel summing to
 * zero, the lesion at (1, 2) brightest and a weaker positive weight at (2, 2).
 */
function cancellingMeansCase() {
  const size = 4;
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [size, size, 1], filters: 2, kernelSize: 1, name: 'conv' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 2, activation: 'softmax', name: 'out' }),
    ],
  });
  model.getLayer('conv').setWeights([tf.tensor4d([1, 0.5], [1, 1, 1, 2]), tf.zeros([2])]);
  const at = (row: number, col: number, channel: number) => (row * size + col) * 2 + channel;
  const lesion = { row: 1, col: 2 };
  const kernel = Array.from({ length: size * size * 2 }, () => [0, 0]);
  const weight = (row: number, col: number, channel: number, value: number) => ((kernel[at(row, col, channel)] as number[])[1] = value);
  weight(lesion.row, lesion.col, 0, 1);
  weight(2, 2, 0, 0.5);
  weight(3, 0, 0, -1.5);
  weight(lesion.row, lesion.col, 1, 1);
  weight(0, 3, 1, -1);
  model.getLayer('out').setWeights([tf.tensor2d(kernel), tf.tensor1d([0.3, -0.2])]);
  const pixels = new Uint8Array(size * size).fill(100);
  pixels[lesion.row * size + lesion.col] = 200;
  pixels[2 * size + 2] = 120;
  const mask = new Uint8Array(size * size);
  mask[lesion.row * size + lesion.col] = 1;
  return { size, model, lesion, pixels, mask };
}

describe("gradCam.method 'hires-cam' (HiResCAM, Draelos & Carin 2020)", () => {
  it('computes ReLU(Σ_k ∂y/∂A^k ⊙ A^k), upsampled and scaled as Grad-CAM is, on the same gradients', () => {
    const model = denseHeadModel();
    const gradCam = createGradCamExplainer(model);
    const hiRes = createGradCamExplainer(model, { method: 'hires-cam' });
    expect([gradCam.method, hiRes.method]).toEqual(['grad-cam', 'hires-cam']);
    expect(hiRes.layerName).toBe(gradCam.layerName);
    const pixels = randomImage(5);
    const { features, gradients, shape } = hiRes.gradients(pixels, SIZE, 1);
    expect(Array.from(gradients)).toEqual(Array.from(gradCam.gradients(pixels, SIZE, 1).gradients));
    const [h, w, k] = shape;
    const cam = new Float32Array(h * w);
    for (let i = 0; i < h * w; i++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += (gradients[i * k + c] as number) * (features[i * k + c] as number);
      cam[i] = Math.max(0, s);
    }
    const up = tf.tidy(() => tf.image.resizeBilinear(tf.tensor4d(cam, [1, h, w, 1]), [SIZE, SIZE], false, true).dataSync());
    const max = Math.max(...up);
    expect(max).toBeGreaterThan(0);
    const result = hiRes.explain(pixels, SIZE, 1);
    result.heatmap.forEach((v, i) => expect(v).toBeCloseTo((up[i] as number) / max, 5));
    expect(result.heatmap[result.peak.y * SIZE + result.peak.x]).toBe(Math.max(...result.heatmap));
    // Not Grad-CAM's map under another name.
    const plain = gradCam.explain(pixels, SIZE, 1).heatmap;
    expect(Math.max(...result.heatmap.map((v, i) => Math.abs(v - (plain[i] as number))))).toBeGreaterThan(0.05);
  });

  it("finds the lesion where Grad-CAM's channel means cancel: a Flatten → Dense head by hand", () => {
    // 4 × 4 image → 1×1 conv, 2 filters (A^0 = x, A^1 = x / 2, x = pixels / 255) → Flatten → Dense.
    // Class 1's weights per channel sum to zero, so Grad-CAM's weights (their means) are 0 and its
    // map is all zeros; y^1 − b = Σ W ⊙ A, so HiResCAM's map is each position's share of the score.
    const { size, model, lesion, pixels, mask } = cancellingMeansCase();
    // By hand: (1,2): 1 · 200/255 + 1 · 100/255 = 300/255; (2,2): 0.5 · 120/255 = 60/255;
    // (3,0) and (0,3) negative, cut by the ReLU; the rest 0. Upsampling 4 → 4 is the identity.
    const expected = new Array<number>(size * size).fill(0);
    expected[lesion.row * size + lesion.col] = 1;
    expected[2 * size + 2] = 60 / 300;
    const hiRes = createGradCamExplainer(model, { method: 'hires-cam' }).explain(pixels, size, 1);
    hiRes.heatmap.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 6));
    expect(hiRes.peak).toEqual({ x: lesion.col, y: lesion.row });
    const gradCam = createGradCamExplainer(model).explain(pixels, size, 1);
    expect(Math.max(...gradCam.heatmap)).toBe(0);
    expect(pointingGame(hiRes.heatmap, mask, size).hit).toBe(true);
    expect(pointingGame(gradCam.heatmap, mask, size).hit).toBe(false);
  });

  it('refuses a method it does not know', () => {
    expect(() => createGradCamExplainer(denseHeadModel(), { method: 'score-cam' as 'grad-cam' })).toThrow(/unknown Grad-CAM method 'score-cam'/);
  });
});

describe("gradCam.method 'grad-cam++' (Grad-CAM++, Chattopadhyay et al. 2018)", () => {
  it('computes ReLU(Σ_k w_k A^k), w_k = Σ_ij α_ij ReLU(g_ij), α = g² / (2g² + Σ_ab A^k_ab g³), on the same gradients', () => {
    // 'last' is tanh: A takes both signs, so Σ_ab A^k_ab and the denominator do too.
    const model = denseHeadModel();
    const gradCam = createGradCamExplainer(model);
    const plusPlus = createGradCamExplainer(model, { method: 'grad-cam++' });
    expect(plusPlus.method).toBe('grad-cam++');
    expect(plusPlus.layerName).toBe(gradCam.layerName);
    const pixels = randomImage(5);
    const { features, gradients, shape } = plusPlus.gradients(pixels, SIZE, 1);
    expect(Array.from(gradients)).toEqual(Array.from(gradCam.gradients(pixels, SIZE, 1).gradients));
    const [h, w, k] = shape;
    const mapWith = (weightOf: (c: number) => number): number[] => {
      const weights = Array.from({ length: k }, (_, c) => weightOf(c));
      const cam = new Float32Array(h * w);
      for (let i = 0; i < h * w; i++) {
        let s = 0;
        for (let c = 0; c < k; c++) s += (weights[c] as number) * (features[i * k + c] as number);
        cam[i] = Math.max(0, s);
      }
      const up = tf.tidy(() => Array.from(tf.image.resizeBilinear(tf.tensor4d(cam, [1, h, w, 1]), [SIZE, SIZE], false, true).dataSync()));
      const max = Math.max(...up);
      return up.map((v) => (max > 0 ? v / max : 0));
    };
    const channelSum = (c: number): number => {
      let s = 0;
      for (let i = 0; i < h * w; i++) s += features[i * k + c] as number;
      return s;
    };
    const alphaWeighted = (c: number): number => {
      let weight = 0;
      for (let i = 0; i < h * w; i++) {
        const g = gradients[i * k + c] as number;
        const denominator = 2 * g * g + channelSum(c) * g * g * g;
        if (g > 0 && denominator !== 0) weight += ((g * g) / denominator) * g;
      }
      return weight;
    };
    const expected = mapWith(alphaWeighted);
    expect(Math.max(...expected)).toBe(1);
    const result = plusPlus.explain(pixels, SIZE, 1);
    result.heatmap.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 5));
    expect(result.heatmap[result.peak.y * SIZE + result.peak.x]).toBe(Math.max(...result.heatmap));
    // Not Grad-CAM's map under another name. (With gradients this small α is close to 1/2 at every
    // position, so the map is close to the plain sum of positive gradients; the hand case below
    // checks α itself.)
    const plain = gradCam.explain(pixels, SIZE, 1).heatmap;
    expect(Math.max(...result.heatmap.map((v, i) => Math.abs(v - (plain[i] as number))))).toBeGreaterThan(0.05);
  });

  it("finds the lesion where Grad-CAM's channel means cancel: a Flatten → Dense head by hand", () => {
    // The HiResCAM case above: A^0 = x, A^1 = x / 2 (x = pixels / 255), y^1 = Σ W ⊙ A + b, so
    // g = W, and each channel's weights sum to zero (Grad-CAM: all-zero map). Grad-CAM++ counts the
    // positive ones: with S = Σ x = 1720 / 255, channel 0 has g = 1 at the lesion and 0.5 at (2, 2),
    // α = 1 / (2 + S g), so w_0 = 1 / (2 + S) + 0.5 / (2 + S / 2); channel 1 has g = 1 at the lesion,
    // w_1 = 1 / (2 + S / 2). Both weights are positive and A^1 = A^0 / 2, so the map is
    // (w_0 + w_1 / 2) x: the image itself, largest on the lesion. α is 0 where g = 0 (0 / 0).
    const { size, model, lesion, pixels, mask } = cancellingMeansCase();
    const plusPlus = createGradCamExplainer(model, { method: 'grad-cam++' }).explain(pixels, size, 1);
    plusPlus.heatmap.forEach((v, i) => expect(v).toBeCloseTo((pixels[i] as number) / 200, 6));
    expect(plusPlus.peak).toEqual({ x: lesion.col, y: lesion.row });
    const gradCam = createGradCamExplainer(model).explain(pixels, size, 1);
    expect(Math.max(...gradCam.heatmap)).toBe(0);
    expect(pointingGame(plusPlus.heatmap, mask, size).hit).toBe(true);
    expect(pointingGame(gradCam.heatmap, mask, size).hit).toBe(false);
    // The weights by hand: the map is their combination, so check them on the unnormalised cam too.
    const S = 1720 / 255;
    const w0 = 1 / (2 + S) + 0.5 / (2 + S / 2);
    const w1 = 1 / (2 + S / 2);
    const { features, gradients } = createGradCamExplainer(model, { method: 'grad-cam++' }).gradients(pixels, size, 1);
    const weights = tf.tidy(() =>
      Array.from(camWeights('grad-cam++', tf.tensor4d(features, [1, size, size, 2]), tf.tensor4d(gradients, [1, size, size, 2])).dataSync()),
    );
    expect(weights[0]).toBeCloseTo(w0, 6);
    expect(weights[1]).toBeCloseTo(w1, 6);
  });
});

describe('Grad-CAM on the wasm backend', () => {
  it(`gives the ${REFERENCE_BACKEND} backend’s maps, every gradCam.method, using only kernels wasm has`, async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    const model = denseHeadModel();
    const pixels = randomImage(21);
    const onCpu = GRAD_CAM_METHODS.map((method) => createGradCamExplainer(model, { method }).explain(pixels, SIZE, 2));
    try {
      expect(await tf.setBackend('wasm')).toBe(true);
      GRAD_CAM_METHODS.forEach((method, m) => {
        const reference = onCpu[m] as { heatmap: Float32Array; probabilities: number[] };
        const onWasm = createGradCamExplainer(model, { method }).explain(pixels, SIZE, 2);
        expect(onWasm.classIndex).toBe(2);
        onWasm.heatmap.forEach((v, i) => expect(v).toBeCloseTo(reference.heatmap[i] as number, 4));
        onWasm.probabilities.forEach((p, i) => expect(p).toBeCloseTo(reference.probabilities[i] as number, 5));
      });
    } finally {
      await tf.setBackend(REFERENCE_BACKEND);
    }
  });
});
