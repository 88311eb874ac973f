import { describe, expect, it } from 'vitest';
import { configField, parseConfigValue } from './config-fields';
import { ConfigError, parseExperimentConfig } from './experiment-config';

describe('configField', () => {
  it('reads description, default and bounds from the experiment schema', () => {
    const defaults = parseExperimentConfig({});
    const imageSize = configField('dataset.imageSize');
    expect(imageSize).toMatchObject({ defaultValue: defaults.dataset.imageSize, nullable: false, choices: [], expected: 'an integer from 16 to 512' });
    expect(imageSize.description).toMatch(/pixels/);
    expect(configField('dataset.onCorruptImage')).toMatchObject({ defaultValue: 'fail', choices: ['fail', 'skip'], number: null, expected: 'one of fail, skip' });
    expect(configField('dataset.degradeToPixels')).toMatchObject({ defaultValue: null, nullable: true, expected: 'an integer from 8 to 512' });
    expect(configField('runtime.threads')).toMatchObject({ defaultValue: 'auto', choices: ['auto'], expected: 'auto or an integer from 1 to 256', expectedNumber: 'an integer from 1 to 256' });
    expect(configField('seed').defaultValue).toBe(defaults.seed);
  });

  it('words exclusive and one-sided bounds as they are', () => {
    expect(configField('dataset.pretrainPatientShare').expected).toBe('a number greater than 0 and less than 1');
    expect(configField('pretrain.learningRate').expected).toBe('a number greater than 0');
    expect(configField('pretrain.momentum').expected).toBe('a number of at least 0 and less than 1');
  });

  it('refuses a path the schema does not have', () => {
    // @ts-expect-error not a config path
    expect(() => configField('dataset.nope')).toThrow(/no field dataset\.nope/);
  });
});

describe('parseConfigValue', () => {
  it('parses numbers and choices with the schema', () => {
    expect(parseConfigValue('dataset.imageSize', '128', { origin: '--image-size' })).toBe(128);
    expect(parseConfigValue('dataset.onCorruptImage', 'skip', { origin: '--on-corrupt' })).toBe('skip');
    expect(parseConfigValue('runtime.threads', 'auto', { origin: '--threads' })).toBe('auto');
    expect(parseConfigValue('runtime.threads', '3', { origin: '--threads', numbersOnly: true })).toBe(3);
  });

  it.each([
    ['dataset.imageSize', '8', {}, '--flag 8: dataset.imageSize: expected an integer from 16 to 512'],
    ['dataset.imageSize', '64.5', {}, 'expected an integer from 16 to 512'],
    ['dataset.imageSize', 'big', {}, '--flag big: dataset.imageSize: expected an integer'],
    ['dataset.onCorruptImage', 'ignore', {}, '--flag ignore: dataset.onCorruptImage: expected one of fail, skip'],
    ['runtime.threads', 'auto', { numbersOnly: true }, '--flag auto: runtime.threads: expected an integer from 1 to 256'],
  ] as const)('rejects %s = %s naming flag and field', (path, text, options, message) => {
    let caught: unknown;
    try {
      parseConfigValue(path, text, { origin: '--flag', ...options });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toContain(message);
    expect((caught as ConfigError).fields).toEqual([path]);
  });
});
