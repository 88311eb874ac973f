import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyConfigOverrides, ConfigError, GRAD_CAM_METHODS, parseExperimentConfig } from './experiment-config';
import { loadServiceSettings, serviceEnvironment } from './service-settings';

/** The fields a ConfigError names for `raw`, or [] when it parses. */
function fieldsOf(raw: unknown): string[] {
  try {
    parseExperimentConfig(raw);
  } catch (error) {
    if (error instanceof ConfigError) return error.fields;
    throw error;
  }
  return [];
}

describe('parseExperimentConfig', () => {
  it('fills every default, with the paper fine-tuning recipe', () => {
    const config = parseExperimentConfig({});
    expect(config.dataset.source).toEqual({ kind: 'synthetic', imagesPerClass: 80, pretrainImagesPerClass: 200 });
    expect([config.pretrain.epochs, config.fineTune.epochs]).toEqual([30, 40]);
    expect(config.dataset.folds).toBe(5);
    expect(config.pretrain).toMatchObject({ optimizer: 'adam', learningRate: 1e-3, schedule: 'cosine' });
    expect(config.fineTune).toMatchObject({ optimizer: 'sgd', learningRate: 1e-4, momentum: 0.9, freeze: 'below-last-conv-block' });
    expect(config.pretrain.augmentation).toEqual({ rotationDegrees: 10, scale: 0.1, horizontalFlip: true });
  });

  it('names unknown keys at any depth', () => {
    const error = (() => {
      try {
        parseExperimentConfig({ learningRate: 1, pretrain: { epochz: 3 } }, 'my.json');
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).fields.sort()).toEqual(['learningRate', 'pretrain.epochz']);
    expect((error as Error).message).toContain('my.json');
    expect((error as Error).message).toContain('pretrain.epochz: unknown key');
  });

  it('names bad values', () => {
    expect(() => parseExperimentConfig({ dataset: { imageSize: 8 } })).toThrow(/dataset\.imageSize/);
    expect(() => parseExperimentConfig({ fineTune: { freeze: 'half' } })).toThrow(/fineTune\.freeze/);
    expect(() => parseExperimentConfig({ dataset: { source: { kind: 'folder' } } })).toThrow(/dataset\.source\.root/);
    expect(() => parseExperimentConfig({ model: { architecture: 'lenet' } })).toThrow(/model\.architecture/);
  });
});

describe('gradCam.method (issue 11 item 6)', () => {
  it("defaults to grad-cam++, takes grad-cam and hires-cam, and rejects any other method naming the field and the choices", () => {
    expect(parseExperimentConfig({}).gradCam.method).toBe('grad-cam++');
    expect(parseExperimentConfig({ gradCam: { method: 'hires-cam' } }).gradCam.method).toBe('hires-cam');
    expect(parseExperimentConfig({ gradCam: { method: 'grad-cam++' } }).gradCam.method).toBe('grad-cam++');
    expect(GRAD_CAM_METHODS).toEqual(['grad-cam', 'hires-cam', 'grad-cam++']);
    let error: unknown;
    try {
      parseExperimentConfig({ gradCam: { method: 'score-cam' } }, 'cam.json');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).fields).toEqual(['gradCam.method']);
    expect((error as Error).message).toMatch(/cam\.json[\s\S]*gradCam\.method: .*grad-cam.*hires-cam.*grad-cam\+\+/);
  });
});

describe('the training levers and test-time flip (issue 11)', () => {
  it('default to off in both stages and in evaluation', () => {
    const config = parseExperimentConfig({});
    for (const stage of [config.pretrain, config.fineTune]) {
      expect(stage).toMatchObject({ labelSmoothing: 0, classWeighting: 'none', weightDecay: 0 });
    }
    expect(config.evaluation).toEqual({ testTimeFlip: false });
  });

  it('take values in range', () => {
    const config = parseExperimentConfig({
      pretrain: { labelSmoothing: 0.5, weightDecay: 0.1 },
      fineTune: { labelSmoothing: 0.1, classWeighting: 'balanced', weightDecay: 1e-4 },
      evaluation: { testTimeFlip: true },
    });
    expect(config.pretrain).toMatchObject({ labelSmoothing: 0.5, classWeighting: 'none', weightDecay: 0.1 });
    expect(config.fineTune).toMatchObject({ labelSmoothing: 0.1, classWeighting: 'balanced', weightDecay: 1e-4 });
    expect(config.evaluation.testTimeFlip).toBe(true);
  });

  it('reject out-of-range values naming the field', () => {
    expect(fieldsOf({ pretrain: { labelSmoothing: 0.6 } })).toEqual(['pretrain.labelSmoothing']);
    expect(fieldsOf({ fineTune: { labelSmoothing: -0.1 } })).toEqual(['fineTune.labelSmoothing']);
    expect(fieldsOf({ fineTune: { classWeighting: 'inverse' } })).toEqual(['fineTune.classWeighting']);
    expect(fieldsOf({ pretrain: { weightDecay: 0.2 } })).toEqual(['pretrain.weightDecay']);
    expect(fieldsOf({ fineTune: { weightDecay: -1 } })).toEqual(['fineTune.weightDecay']);
    expect(fieldsOf({ evaluation: { testTimeFlip: 'yes' } })).toEqual(['evaluation.testTimeFlip']);
    expect(fieldsOf({ evaluation: { flip: true } })).toEqual(['evaluation.flip']);
    expect(fieldsOf({ fineTune: { augmentation: { translatePixels: 1.5 } } })).toEqual(['fineTune.augmentation.translatePixels']);
    expect(fieldsOf({ fineTune: { augmentation: { translatePixels: 17 } } })).toEqual(['fineTune.augmentation.translatePixels']);
    expect(parseExperimentConfig({ fineTune: { augmentation: { translatePixels: 4 } } }).fineTune.augmentation.translatePixels).toBe(4);
    // Absent stays absent, so the stored configs (and their hashes) of earlier runs do not change.
    expect(parseExperimentConfig({}).fineTune.augmentation).not.toHaveProperty('translatePixels');
    expect(() => parseExperimentConfig({ fineTune: { labelSmoothing: 0.6 } }, 'lever.json')).toThrow(/lever\.json[\s\S]*fineTune\.labelSmoothing: .*0\.5/);
  });
});

describe('model.members (issue 11: an ensemble of initial draws per fold)', () => {
  it('defaults to one network and takes 1 to 8 members for a scratch recipe', () => {
    expect(parseExperimentConfig({}).model.members).toBe(1);
    expect(parseExperimentConfig({ model: { members: 3 }, fineTune: { freeze: 'scratch' } }).model.members).toBe(3);
    expect(fieldsOf({ model: { members: 0 }, fineTune: { freeze: 'scratch' } })).toEqual(['model.members']);
    expect(fieldsOf({ model: { members: 9 }, fineTune: { freeze: 'scratch' } })).toEqual(['model.members']);
    expect(fieldsOf({ model: { members: 1.5 }, fineTune: { freeze: 'scratch' } })).toEqual(['model.members']);
  });

  it('refuses several members for a recipe that fine-tunes a pretrained network, naming the field and the freeze', () => {
    expect(fieldsOf({ model: { members: 2 } })).toEqual(['model.members']);
    expect(() => parseExperimentConfig({ model: { members: 2 }, fineTune: { freeze: 'none' } }, 'ens.json')).toThrow(/ens\.json[\s\S]*model\.members: 2 members need fineTune\.freeze 'scratch'.*'none'/);
  });
});

describe('applyConfigOverrides', () => {
  it('sets dotted paths, parsing JSON values', () => {
    const raw = applyConfigOverrides({ pretrain: { epochs: 2 } }, ['pretrain.epochs=7', 'name=my run', 'fineTune.augmentation.horizontalFlip=false']);
    expect(raw).toEqual({ pretrain: { epochs: 7 }, name: 'my run', fineTune: { augmentation: { horizontalFlip: false } } });
    expect(parseExperimentConfig(raw).pretrain.epochs).toBe(7);
  });

  it('rejects overrides without a path', () => {
    expect(() => applyConfigOverrides({}, ['=3'])).toThrow(ConfigError);
    expect(() => applyConfigOverrides({}, ['epochs'])).toThrow(/expected <dotted.path>=<value>/);
    expect(() => applyConfigOverrides({}, ['a..b=1'])).toThrow(ConfigError);
  });
});

describe('loadServiceSettings', () => {
  it('defaults to the embedded services under the checkout\'s .detl', () => {
    const settings = loadServiceSettings({}, '/work/x');
    // /work/x is inside no checkout: the home is the running checkout's (service-settings.test.ts).
    expect(settings.home).toBe(path.resolve(__dirname, '../../../.detl'));
    expect(settings.temporal.address).toBe('127.0.0.1:7233');
    expect(settings.s3.endpoint).toBe('http://127.0.0.1:9000');
    expect(settings.s3.accessKeyId).toBeDefined();
  });

  it('uses AWS itself when credentials are given without an endpoint', () => {
    const settings = loadServiceSettings({ AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b', DETL_S3_BUCKET: 'runs-bucket' }, '/w');
    expect(settings.s3.endpoint).toBeUndefined();
    expect(settings.s3.bucket).toBe('runs-bucket');
  });

  it('names the malformed variable', () => {
    expect(() => loadServiceSettings({ DETL_TEMPORAL_ADDRESS: 'nohost' })).toThrow(/DETL_TEMPORAL_ADDRESS: expected host:port/);
    expect(() => loadServiceSettings({ DETL_DATABASE_URL: 'mysql://x' })).toThrow(/DETL_DATABASE_URL/);
    expect(() => loadServiceSettings({ DETL_S3_BUCKET: 'Bad_Bucket' })).toThrow(/DETL_S3_BUCKET/);
  });
});

describe('serviceEnvironment', () => {
  it('is the inverse of loadServiceSettings', () => {
    const settings = loadServiceSettings({ DETL_S3_ENDPOINT: 'http://10.0.0.5:9000', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', DETL_TASK_QUEUE: 'gpu' }, '/srv');
    expect(loadServiceSettings(serviceEnvironment(settings), '/elsewhere')).toEqual(settings);
  });
});
