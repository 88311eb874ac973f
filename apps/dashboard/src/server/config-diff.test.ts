import { describe, expect, it } from 'vitest';
import { diffConfigs } from './config-diff';

describe('diffConfigs', () => {
  it('keeps only the leaf paths that differ, with each run’s value', () => {
    const a = { model: { architecture: 'small-vgg', width: 1 }, fineTune: { lr: 1e-4, aug: [1, 2] }, seed: 1 };
    const b = { model: { architecture: 'alexnet', width: 1 }, fineTune: { lr: 1e-4, aug: [1, 3] }, seed: 1 };
    const c = { model: { architecture: 'small-vgg', width: 1 }, fineTune: { lr: 1e-3, aug: [1, 2] }, seed: 1, extra: true };
    expect(diffConfigs([a, b, c])).toEqual([
      { path: 'extra', values: [undefined, undefined, true] },
      { path: 'fineTune.aug', values: [[1, 2], [1, 3], [1, 2]] },
      { path: 'fineTune.lr', values: [1e-4, 1e-4, 1e-3] },
      { path: 'model.architecture', values: ['small-vgg', 'alexnet', 'small-vgg'] },
    ]);
  });

  it('finds nothing for identical configurations', () => {
    expect(diffConfigs([{ a: { b: null } }, { a: { b: null } }])).toEqual([]);
  });
});
