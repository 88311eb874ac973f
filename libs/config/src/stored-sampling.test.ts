import { describe, expect, it } from 'vitest';
import { ConfigError, parseExperimentConfig } from './experiment-config';
import { applyStoredSamplingShape } from './stored-sampling';

const KEY = `manifests/${'a'.repeat(64)}.json`;
const source = { kind: 'manifest', key: KEY };

describe('applyStoredSamplingShape', () => {
  it('takes image size and folds from the manifest when the configuration leaves them out', () => {
    const raw = { dataset: { source, maxImagesPerClass: 10 } };
    const config = parseExperimentConfig(applyStoredSamplingShape(raw, { imageSize: 32, folds: 3 }, KEY));
    expect(config.dataset).toMatchObject({ imageSize: 32, folds: 3, maxImagesPerClass: 10, source });
    // The caller's object is left as it was.
    expect(raw.dataset).toEqual({ source, maxImagesPerClass: 10 });
  });

  it('accepts a configuration that states the manifest’s own values', () => {
    const raw = { dataset: { source, imageSize: 32, folds: 3 } };
    expect(parseExperimentConfig(applyStoredSamplingShape(raw, { imageSize: 32, folds: 3 }, KEY)).dataset).toMatchObject({ imageSize: 32, folds: 3 });
  });

  it('refuses a stated value the manifest contradicts, naming each field', () => {
    let caught: unknown;
    try {
      applyStoredSamplingShape({ dataset: { source, imageSize: 64, folds: 5 } }, { imageSize: 32, folds: 3 }, KEY, 'run.json');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.fields).toEqual(['dataset.imageSize', 'dataset.folds']);
    expect(error.message).toContain(`run.json: invalid experiment configuration`);
    expect(error.message).toContain(`dataset.imageSize: 64 conflicts with the stored sampling ${KEY}, which has 32`);
    expect(error.message).toContain('dataset.folds: 5 conflicts');
  });
});
