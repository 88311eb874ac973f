import { describe, expect, it } from 'vitest';
import type { CatalogEntry } from './catalog';
import { confoundWarnings, imageStatistics, IMAGE_STATISTICS, sourcePredictability } from './confounds';
import { createRandom } from './random';
import { entry } from './test-support/catalog-fixtures';

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

describe('confoundWarnings', () => {
  const base = (i: number, label: 'normal' | 'covid' | 'other_disease', source: string, lowResolution = false): CatalogEntry =>
    entry(`${label}/${i}`, label, `${label}-${i}`, { source, lowResolution });

  it('flags a class of low-resolution originals unless images are degraded, and a class with its own source', () => {
    const catalog = [
      ...Array.from({ length: 20 }, (_, i) => base(i, 'normal', i % 2 ? 'nih' : 'kermany')),
      ...Array.from({ length: 20 }, (_, i) => base(i, 'other_disease', 'nih', true)),
      ...Array.from({ length: 20 }, (_, i) => base(i, 'covid', 'web')),
    ];
    const warnings = confoundWarnings(catalog, null);
    expect(warnings.join('\n')).toMatch(/resolution shortcut: other_disease 100% low-resolution originals vs covid 0%, normal 0%/);
    expect(warnings.join('\n')).toMatch(/source shortcut: 100% of covid images come from web/);
    expect(warnings.some((w) => w.includes('of normal images'))).toBe(false);
    expect(confoundWarnings(catalog, 64).some((w) => w.startsWith('resolution shortcut'))).toBe(false);
  });

  it('says nothing for a well-mixed catalog', () => {
    const catalog = (['normal', 'covid', 'other_disease'] as const).flatMap((label) => Array.from({ length: 20 }, (_, i) => base(i, label, i % 2 ? 'a' : 'b')));
    expect(confoundWarnings(catalog, null)).toEqual([]);
  });
});
