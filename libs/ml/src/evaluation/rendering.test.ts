import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { jetColor, renderConfusionMatrixPng, renderGradCamOverlay, renderLearningCurvesPng } from './rendering';

interface Decoded {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
  rgb(x: number, y: number): [number, number, number];
}

async function decode(png: Uint8Array): Promise<Decoded> {
  expect(Array.from(png.subarray(0, 4))).toEqual([0x89, 0x50, 0x4e, 0x47]);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const pixels = new Uint8Array(data);
  return {
    width: info.width,
    height: info.height,
    channels: info.channels,
    data: pixels,
    rgb: (x, y) => {
      const i = (y * info.width + x) * info.channels;
      return [pixels[i] as number, pixels[i + 1] as number, pixels[i + 2] as number];
    },
  };
}

/** Bounding rows of the pixels that differ between two same-sized images, or null if identical. */
function differingRows(a: Decoded, b: Decoded): { min: number; max: number; count: number } | null {
  expect([b.width, b.height, b.channels]).toEqual([a.width, a.height, a.channels]);
  let min = Infinity;
  let max = -Infinity;
  let count = 0;
  for (let i = 0; i < a.data.length; i++) {
    if (a.data[i] !== b.data[i]) {
      const y = Math.floor(i / a.channels / a.width);
      min = Math.min(min, y);
      max = Math.max(max, y);
      count++;
    }
  }
  return count === 0 ? null : { min, max, count };
}

function countNear(image: Decoded, colour: [number, number, number], tolerance: number): number {
  let count = 0;
  for (let i = 0; i < image.data.length; i += image.channels) {
    if (colour.every((c, k) => Math.abs((image.data[i + k] as number) - c) <= tolerance)) count++;
  }
  return count;
}

describe('jetColor', () => {
  it('runs blue → green → red, clamped', () => {
    expect(jetColor(0)).toEqual([0, 0, 128]);
    expect(jetColor(0.5)).toEqual([128, 255, 128]);
    expect(jetColor(1)).toEqual([128, 0, 0]);
    expect(jetColor(0.25)).toEqual([0, 128, 255]);
    expect(jetColor(-3)).toEqual(jetColor(0));
    expect(jetColor(7)).toEqual(jetColor(1));
    expect(jetColor(Number.NaN)).toEqual(jetColor(0));
  });
});

describe('renderGradCamOverlay', () => {
  const size = 16;
  const grey = new Uint8Array(size * size).fill(100);
  // Left half cold, right half hot.
  const heat = Float32Array.from({ length: size * size }, (_, i) => (i % size < size / 2 ? 0 : 1));

  it('enlarges to at least 256 px by an integer factor', async () => {
    expect(await decode(await renderGradCamOverlay(grey, size, heat))).toMatchObject({ width: 256, height: 256, channels: 3 });
    expect(await decode(await renderGradCamOverlay(grey, size, heat, { minDisplaySize: 100 }))).toMatchObject({ width: 112, height: 112 });
    const big = new Uint8Array(300 * 300);
    expect(await decode(await renderGradCamOverlay(big, 300, new Float32Array(300 * 300)))).toMatchObject({ width: 300, height: 300 });
  });

  it('leaves cold pixels grey and tints hot ones with the jet colour at opacity alpha', async () => {
    const image = await decode(await renderGradCamOverlay(grey, size, heat, { alpha: 0.5 }));
    const cold = image.rgb(64, 128);
    cold.forEach((c) => expect(Math.abs(c - 100)).toBeLessThanOrEqual(1));
    // 0.5 · 100 + 0.5 · jet(1) = 0.5 · [100, 100, 100] + 0.5 · [128, 0, 0].
    const hot = image.rgb(192, 128);
    [114, 50, 50].forEach((c, k) => expect(Math.abs((hot[k] as number) - c)).toBeLessThanOrEqual(1));
  });

  it('shows the plain X-ray for alpha 0 or an all-zero map', async () => {
    const xray = Uint8Array.from({ length: size * size }, (_, i) => (i * 7) % 256);
    const plain = await decode(await renderGradCamOverlay(xray, size, new Float32Array(size * size), { minDisplaySize: 16 }));
    const noAlpha = await decode(await renderGradCamOverlay(xray, size, heat, { alpha: 0, minDisplaySize: 16 }));
    for (let i = 0; i < size * size; i++) {
      expect(plain.rgb(i % size, Math.floor(i / size))).toEqual([xray[i], xray[i], xray[i]]);
      expect(noAlpha.rgb(i % size, Math.floor(i / size))).toEqual([xray[i], xray[i], xray[i]]);
    }
  });

  it('rejects mismatched sizes and a bad alpha', async () => {
    await expect(renderGradCamOverlay(grey, size, new Float32Array(10))).rejects.toThrow(RangeError);
    await expect(renderGradCamOverlay(new Uint8Array(3), size, heat)).rejects.toThrow(RangeError);
    await expect(renderGradCamOverlay(grey, size, heat, { alpha: 2 })).rejects.toThrow(RangeError);
  });
});

describe('renderConfusionMatrixPng', () => {
  const names = ['normal', 'covid'];

  it('grows with the number of classes', async () => {
    const two = await decode(await renderConfusionMatrixPng([[1, 0], [0, 1]], names));
    const four = await decode(
      await renderConfusionMatrixPng(
        [
          [1, 0, 0, 0],
          [0, 1, 0, 0],
          [0, 0, 1, 0],
          [0, 0, 0, 1],
        ],
        ['normal', 'pneumonia', 'other_disease', 'covid'],
      ),
    );
    expect(four.width).toBeGreaterThan(two.width + 150);
    expect(four.height).toBeGreaterThan(two.height + 150);
  });

  it('draws the counts as text in their own row', async () => {
    // Same row fractions (so the same colours), different counts: only the text can differ.
    const base = await decode(await renderConfusionMatrixPng([[8, 2], [1, 9]], names));
    const row0 = await decode(await renderConfusionMatrixPng([[80, 20], [1, 9]], names));
    const row1 = await decode(await renderConfusionMatrixPng([[8, 2], [10, 90]], names));
    const top = differingRows(base, row0);
    const bottom = differingRows(base, row1);
    expect(top).not.toBeNull();
    expect(bottom).not.toBeNull();
    expect(top!.count).toBeGreaterThan(50);
    expect(top!.max).toBeLessThan(bottom!.min);
  });

  it('colours cells by row fraction: dark diagonal for a perfect classifier, none for a uniform one', async () => {
    const darkest: [number, number, number] = [8, 48, 107];
    const perfect = await decode(await renderConfusionMatrixPng([[50, 0], [0, 20]], names));
    const uniform = await decode(await renderConfusionMatrixPng([[10, 10], [10, 10]], names));
    expect(countNear(perfect, darkest, 2)).toBeGreaterThan(2 * 60 * 60);
    expect(countNear(uniform, darkest, 2)).toBe(0);
  });

  it('copes with empty rows and markup in class names, and rejects bad shapes', async () => {
    const image = await decode(await renderConfusionMatrixPng([[3, 1], [0, 0]], ['<a&b>', '"c"']));
    expect(image.width).toBeGreaterThan(200);
    await expect(renderConfusionMatrixPng([[1, 2]], names)).rejects.toThrow(RangeError);
    await expect(renderConfusionMatrixPng([[1]], names)).rejects.toThrow(RangeError);
  });
});

describe('renderLearningCurvesPng', () => {
  const curve = (f: (epoch: number) => number, n = 10) => Array.from({ length: n }, (_, i) => ({ epoch: i + 1, value: f(i + 1) }));
  const blue: [number, number, number] = [0x1f, 0x77, 0xb4];
  const orange: [number, number, number] = [0xff, 0x7f, 0x0e];

  it('draws each series in its own colour at the requested size', async () => {
    const one = await decode(
      await renderLearningCurvesPng([{ name: 'train accuracy', points: curve((e) => 0.5 + e / 25) }], { title: 'Fold 1', yLabel: 'accuracy' }),
    );
    expect(one).toMatchObject({ width: 800, height: 480 });
    expect(countNear(one, blue, 10)).toBeGreaterThan(300);
    expect(countNear(one, orange, 10)).toBe(0);
    const two = await decode(
      await renderLearningCurvesPng(
        [
          { name: 'train', points: curve((e) => 1 / e) },
          { name: 'validation', points: curve((e) => 1.2 / e) },
        ],
        { title: 'Loss', yLabel: 'loss', width: 640, height: 360 },
      ),
    );
    expect(two).toMatchObject({ width: 640, height: 360 });
    expect(countNear(two, blue, 10)).toBeGreaterThan(200);
    expect(countNear(two, orange, 10)).toBeGreaterThan(200);
  });

  it('moves the line when a value changes, and draws a lone point', async () => {
    const options = { title: 't', yLabel: 'y', yMin: 0, yMax: 1 };
    const a = await decode(await renderLearningCurvesPng([{ name: 's', points: curve(() => 0.2) }], options));
    const b = await decode(await renderLearningCurvesPng([{ name: 's', points: curve((e) => (e === 5 ? 0.9 : 0.2)) }], options));
    expect(differingRows(a, b)?.count).toBeGreaterThan(100);
    const high = await decode(await renderLearningCurvesPng([{ name: 's', points: [{ epoch: 1, value: 0.7 }] }], options));
    const low = await decode(await renderLearningCurvesPng([{ name: 's', points: [{ epoch: 1, value: 0.2 }] }], options));
    // Only the marker can tell the two apart; it covers a few dozen pixels in each image.
    expect(differingRows(high, low)?.count).toBeGreaterThan(40);
  });

  it('skips non-finite values and refuses to plot nothing', async () => {
    const image = await decode(
      await renderLearningCurvesPng([{ name: 'loss', points: [...curve((e) => 1 / e), { epoch: 11, value: Number.NaN }] }], { title: 't', yLabel: 'y' }),
    );
    expect(image.width).toBe(800);
    await expect(renderLearningCurvesPng([{ name: 'x', points: [{ epoch: 1, value: Number.NaN }] }], { title: 't', yLabel: 'y' })).rejects.toThrow(RangeError);
    await expect(renderLearningCurvesPng([], { title: 't', yLabel: 'y' })).rejects.toThrow(RangeError);
  });
});
