import { describe, expect, it } from 'vitest';
import { ConfigError } from './experiment-config';
import { expandSweep, parseSweepSpec, resolveSweepExperiments } from './sweep-config';

describe('sweep specifications', () => {
  it('expands list × grid in a fixed order, last grid path fastest', () => {
    const spec = parseSweepSpec({ name: 's', list: [{ 'fineTune.freeze': 'none' }, { 'fineTune.freeze': 'scratch' }], grid: { seed: [1, 2], 'pretrain.epochs': [3] } });
    expect(expandSweep(spec).map((v) => v.overrides)).toEqual([
      { 'fineTune.freeze': 'none', seed: 1, 'pretrain.epochs': 3 },
      { 'fineTune.freeze': 'none', seed: 2, 'pretrain.epochs': 3 },
      { 'fineTune.freeze': 'scratch', seed: 1, 'pretrain.epochs': 3 },
      { 'fineTune.freeze': 'scratch', seed: 2, 'pretrain.epochs': 3 },
    ]);
    expect(spec.concurrency).toBe(2);
  });

  it('draws the same random search for the same seed, inside the given ranges', () => {
    const spec = parseSweepSpec({
      name: 'r',
      random: { samples: 5, seed: 7, space: { 'fineTune.learningRate': { logUniform: [1e-5, 1e-2] }, 'model.widthMultiplier': { choice: [0.5, 1] }, 'pretrain.epochs': { intUniform: [2, 4] } } },
    });
    const first = expandSweep(spec);
    expect(expandSweep(spec)).toEqual(first);
    expect(expandSweep({ ...spec, random: { ...spec.random!, seed: 8 } })).not.toEqual(first);
    for (const { overrides } of first) {
      expect(overrides['fineTune.learningRate']).toBeGreaterThanOrEqual(1e-5);
      expect(overrides['fineTune.learningRate']).toBeLessThanOrEqual(1e-2);
      expect([0.5, 1]).toContain(overrides['model.widthMultiplier']);
      expect([2, 3, 4]).toContain(overrides['pretrain.epochs']);
    }
  });

  it('validates every experiment and names each bad one by index, overrides and config path', () => {
    const spec = parseSweepSpec({ name: 'bad', grid: { 'fineTune.freeze': ['none', 'bogus'], 'pretrain.epochs': [2, 0] } });
    const error = (() => {
      try {
        resolveSweepExperiments(spec, {});
        return null;
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain('3 of 4 experiments are invalid; nothing was started');
    expect(message).toContain('experiment 1 (fineTune.freeze="none", pretrain.epochs=0)');
    expect(message).toContain('experiment 2 (fineTune.freeze="bogus", pretrain.epochs=2)');
    expect(message).toMatch(/experiment 2 [^\n]*\n {2}fineTune\.freeze:/);
    expect(message).not.toContain('experiment 0 ');
    expect((error as ConfigError).fields).toContain('2:fineTune.freeze');
  });

  it('refuses a sweep whose experiments would be tested on different Data-B, naming the experiments', () => {
    const scratch = { 'fineTune.freeze': 'scratch', 'dataset.dataB': 'all' };
    const mixed = parseSweepSpec({ name: 'mixed', list: [{ 'fineTune.freeze': 'none' }, scratch] });
    expect(() => resolveSweepExperiments(mixed, {})).toThrow(/dataset\.dataB differs between experiments: 'exclude-data-a' \(experiments 0\) vs 'all' \(experiments 1\)/);
    const allScratch = parseSweepSpec({ name: 'scratch-only', list: [scratch], grid: { seed: [1, 2] } });
    expect(resolveSweepExperiments(allScratch, {}).map((e) => e.config.dataset.dataB)).toEqual(['all', 'all']);
  });

  it('names each experiment after the sweep and rejects specs without any expansion or with unknown keys', () => {
    const experiments = resolveSweepExperiments(parseSweepSpec({ name: 'ok', list: [{ seed: 4 }] }), { pretrain: { epochs: 2 } });
    expect(experiments[0]?.config).toMatchObject({ name: 'ok-0', seed: 4, pretrain: { epochs: 2 } });
    expect(() => parseSweepSpec({ name: 'empty' })).toThrow(/at least one of grid, list or random/);
    expect(() => parseSweepSpec({ name: 'x', grid: { seed: [1] }, gird: {} })).toThrow(ConfigError);
    expect(() => parseSweepSpec({ name: 'x', grid: { 'not a path': [1] } })).toThrow(/grid\.not a path: Invalid key/);
  });

  it('takes image size and folds of experiments on a stored manifest from it, and names an experiment that contradicts it', () => {
    const key = `manifests/${'b'.repeat(64)}.json`;
    const shapes = new Map([[key, { imageSize: 32, folds: 3 }]]);
    const base = { dataset: { source: { kind: 'manifest', key } } };
    const spec = parseSweepSpec({ name: 'm', grid: { seed: [1, 2] } });
    expect(resolveSweepExperiments(spec, base, shapes).map(({ config }) => [config.dataset.imageSize, config.dataset.folds])).toEqual([[32, 3], [32, 3]]);
    // Without the manifest's shape (not read yet) the schema defaults stand.
    expect(resolveSweepExperiments(spec, base)[0]?.config.dataset.imageSize).toBe(64);
    const clash = parseSweepSpec({ name: 'c', grid: { 'dataset.imageSize': [32, 64] } });
    expect(() => resolveSweepExperiments(clash, base, shapes)).toThrow(/experiment 1 \(dataset\.imageSize=64\):\n {2}dataset\.imageSize: 64 conflicts with the stored sampling/);
  });
});

