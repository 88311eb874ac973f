import { describe, expect, it } from 'vitest';
import { createPointingGameTally, pointingGameReport, pointingGameTolerancePx, scorePointingGame } from './pointing-game-report';

const SIZE = 64;

/** A map peaking at (x, y) and a square lesion mask [x0, x1) × [y0, y1). */
function trial(peak: { x: number; y: number }, lesion: [number, number, number, number]) {
  const heatmap = new Float32Array(SIZE * SIZE);
  heatmap[peak.y * SIZE + peak.x] = 1;
  const mask = new Uint8Array(SIZE * SIZE);
  for (let y = lesion[2]; y < lesion[3]; y += 1) for (let x = lesion[0]; x < lesion[1]; x += 1) mask[y * SIZE + x] = 255;
  return { heatmap, mask };
}

describe('pointing-game report', () => {
  it('scales Zhang et al.\'s 15 px at 224 px to the image', () => {
    expect(pointingGameTolerancePx(224)).toBe(15);
    expect(pointingGameTolerancePx(64)).toBeCloseTo(4.286, 3);
    expect(() => pointingGameTolerancePx(0)).toThrow(RangeError);
  });

  it('counts hits within the tolerance and exact hits per class', () => {
    const tally = createPointingGameTally();
    const inside = trial({ x: 20, y: 20 }, [18, 24, 18, 24]);
    const near = trial({ x: 27, y: 20 }, [18, 24, 18, 24]); // 4 px right of the lesion: a hit within 4.29 px only
    const far = trial({ x: 40, y: 20 }, [18, 24, 18, 24]);
    expect(scorePointingGame(tally, inside.heatmap, inside.mask, SIZE, 3).hit).toBe(true);
    expect(scorePointingGame(tally, near.heatmap, near.mask, SIZE, 3)).toMatchObject({ hit: true, distancePx: 4 });
    expect(scorePointingGame(tally, far.heatmap, far.mask, SIZE, 1).hit).toBe(false);
    const report = pointingGameReport(tally, ['normal', 'pneumonia', 'other_disease', 'covid']);
    expect(report).toMatchObject({ scored: 3, rate: 2 / 3, strictRate: 1 / 3, imageSize: 64, method: 'grad-cam' });
    expect(report?.perClass).toEqual({ pneumonia: { scored: 1, rate: 0, strictRate: 0 }, covid: { scored: 2, rate: 1, strictRate: 0.5 } });
  });

  it.each(['hires-cam', 'grad-cam++'] as const)('names the method that made the maps (%s)', (method) => {
    const tally = createPointingGameTally(method);
    const inside = trial({ x: 20, y: 20 }, [18, 24, 18, 24]);
    scorePointingGame(tally, inside.heatmap, inside.mask, SIZE, 3);
    expect(pointingGameReport(tally, ['normal', 'pneumonia', 'other_disease', 'covid'])).toMatchObject({ method, scored: 1, rate: 1 });
  });

  it('is null with no trials, and refuses trials of two image sizes', () => {
    const tally = createPointingGameTally();
    expect(pointingGameReport(tally, ['a'])).toBeNull();
    const one = trial({ x: 1, y: 1 }, [0, 2, 0, 2]);
    scorePointingGame(tally, one.heatmap, one.mask, SIZE, 0);
    expect(() => scorePointingGame(tally, new Float32Array(16), new Uint8Array(16).fill(1), 4, 0)).toThrow(/64 px and 4 px/);
  });
});
