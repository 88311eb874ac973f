import { describe, expect, it } from 'vitest';
import { imageStatistics, IMAGE_STATISTICS, sourcePredictability } from './confounds';
import { createRandom } from './random';

function images(count: number, size: number, brightness: (i: number) => number, blur: (i: number) => boolean): Uint8Array {
  const random = createRandom(9, 'confound-fixture');
  const pixels = new Uint8Array(count * size * size);
  for (let i = 0; i < count; i += 1) {
    for (let p = 0; p < size * size; p += 1) {
      const noise = blur(i) ? 0 : (random() - 0.5) * 60;
      pixels[i * size * size + p] = Math.max(0, Math.min(255, Math.round(brightness(i) + noise + (random() - 0.5) * 4)));
    }
  }
  return pixels;
}

describe('sourcePredictability', () => {
  const count = 160;
  const size = 16;
  // Two classes, two sources each; source b images are smooth (like upsampled 64 px originals).
  const items = Array.from({ length: count }, (_, i) => ({ source: i % 2 === 0 ? 'a' : 'b', className: i % 4 < 2 ? 'normal' : 'covid', patientId: `p${Math.floor(i / 2)}` }));

  it('finds a source that shows in the pixels, overall and within each class', () => {
    const pixels = images(count, size, () => 120, (i) => i % 2 === 1);
    const report = sourcePredictability({ pixels, count, size }, items);
    expect(report.overall.chance).toBeCloseTo(0.5);
    expect(report.overall.accuracy).toBeGreaterThan(0.95);
    expect(Object.keys(report.withinClass).sort()).toEqual(['covid', 'normal']);
    expect(report.withinClass.normal?.accuracy).toBeGreaterThan(0.95);
  });

  it('stays near chance when sources look alike', () => {
    const pixels = images(count, size, () => 120, () => false);
    const report = sourcePredictability({ pixels, count, size }, items);
    expect(report.overall.accuracy).toBeLessThan(0.7);
  });

  it('computes every named statistic', () => {
    const pixels = images(1, size, () => 50, () => true);
    const stats = imageStatistics(pixels, size);
    expect(stats).toHaveLength(IMAGE_STATISTICS.length);
    expect(stats[0]).toBeCloseTo(50, 0);
    expect(stats.every(Number.isFinite)).toBe(true);
  });
});
