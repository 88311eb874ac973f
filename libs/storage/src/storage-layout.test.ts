import { describe, expect, it } from 'vitest';
import { InvalidObjectKeyError, validateKeyPrefix, validateObjectKey } from './object-key';
import {
  REPORT_FILES,
  epochCheckpointPrefix,
  experimentPrefix,
  foldModelPrefix,
  foldPredictionsKey,
  gradCamFolder,
  gradCamIndexKey,
  gradCamOverlayKey,
  manifestKey,
  modelFileKey,
  modelJsonKey,
  nearDuplicatesKey,
  normalizeModelPrefix,
  parseExperimentKey,
  parseGradCamOverlayKey,
  parseManifestKey,
  parseShardKey,
  pretrainedModelPrefix,
  reportKey,
  samplingInputsKey,
  shardKey,
} from './storage-layout';

const id = '0b5a3c1e-7f2d-4e8a-9c6b-1d2e3f4a5b6c';
const sha = 'ab'.repeat(32);

describe('storage layout', () => {
  it('builds the keys of docs/architecture.md', () => {
    expect(shardKey(sha)).toBe(`shards/${sha}.u8`);
    expect(manifestKey(sha)).toBe(`manifests/${sha}.json`);
    expect(samplingInputsKey('f00d')).toBe('manifests/inputs/f00d.txt');
    expect(nearDuplicatesKey(sha)).toBe(`manifests/near-duplicates/${sha}.json`);
    expect(epochCheckpointPrefix(id, { kind: 'pretrain' }, 3)).toBe(`experiments/${id}/pretrain/epoch-3`);
    expect(pretrainedModelPrefix(id)).toBe(`experiments/${id}/pretrain/best`);
    expect(epochCheckpointPrefix(id, { kind: 'fold', fold: 2 }, 1)).toBe(`experiments/${id}/folds/2/epoch-1`);
    expect(foldModelPrefix(id, 2)).toBe(`experiments/${id}/folds/2/final`);
    expect(foldPredictionsKey(id, 4)).toBe(`experiments/${id}/folds/4/predictions.json`);
    expect(modelJsonKey(foldModelPrefix(id, 0))).toBe(`experiments/${id}/folds/0/final/model.json`);
    expect(modelFileKey(pretrainedModelPrefix(id), 'weights.bin')).toBe(`experiments/${id}/pretrain/best/weights.bin`);
    expect(gradCamOverlayKey(id, { trueClass: 'covid', imageId: 'covid/p1 img#2', predictedClass: 'other_disease' })).toBe(
      `experiments/${id}/gradcam/covid/covid_p1_img_2-pred-other_disease.png`,
    );
    expect(gradCamIndexKey(id)).toBe(`experiments/${id}/gradcam/index.json`);
    expect(reportKey(id, REPORT_FILES.summary)).toBe(`experiments/${id}/report/summary.json`);
    expect(reportKey(id, REPORT_FILES.confusionMatrix)).toBe(`experiments/${id}/report/confusion-matrix.png`);
  });

  it('builds only valid object keys', () => {
    const keys = [
      shardKey(sha),
      manifestKey(sha),
      samplingInputsKey('abc'),
      epochCheckpointPrefix(id, { kind: 'fold', fold: 0 }, 0),
      pretrainedModelPrefix(id),
      foldPredictionsKey(id, 1),
      gradCamOverlayKey(id, { trueClass: 'normal', imageId: '../../etc/passwd', predictedClass: 'normal' }),
      gradCamIndexKey(id),
      reportKey(id, REPORT_FILES.learningCurves),
    ];
    for (const key of keys) expect(validateObjectKey(key)).toBe(key);
    expect(validateKeyPrefix(gradCamFolder(id))).toBe(gradCamFolder(id));
  });

  it('round-trips the content-addressed keys: the hash is read back, never sliced out', () => {
    expect(parseShardKey(shardKey(sha))).toEqual({ sha256: sha });
    expect(parseManifestKey(manifestKey(sha))).toEqual({ sha256: sha });
    expect(parseShardKey(manifestKey(sha))).toBeNull();
    expect(parseManifestKey(shardKey(sha))).toBeNull();
    expect(parseManifestKey(`manifests/${sha}.json.bak`)).toBeNull();
    expect(parseManifestKey(samplingInputsKey('abc'))).toBeNull();
    expect(parseManifestKey(nearDuplicatesKey(sha))).toBeNull();
  });

  it('round-trips experiment keys to the experiment and the path inside it', () => {
    expect(parseExperimentKey(foldModelPrefix(id, 3))).toEqual({ experimentId: id, path: 'folds/3/final' });
    expect(parseExperimentKey(reportKey(id, REPORT_FILES.summary))).toEqual({ experimentId: id, path: 'report/summary.json' });
    expect(parseExperimentKey(`${experimentPrefix(id)}/${'x'}`)).toEqual({ experimentId: id, path: 'x' });
    expect(parseExperimentKey('experiments/not-a-uuid/folds/0/final')).toBeNull();
    expect(parseExperimentKey(shardKey(sha))).toBeNull();
  });

  it('round-trips Grad-CAM overlay keys', () => {
    const overlay = { trueClass: 'other_disease', imageId: 'img-pred-7', predictedClass: 'pneumonia' };
    expect(parseGradCamOverlayKey(gradCamOverlayKey(id, overlay))).toEqual({ experimentId: id, ...overlay });
    expect(parseGradCamOverlayKey(gradCamIndexKey(id))).toBeNull();
    expect(parseGradCamOverlayKey(reportKey(id, REPORT_FILES.confusionMatrix))).toBeNull();
  });

  it('reduces a model prefix as users write it to the prefix', () => {
    const prefix = foldModelPrefix(id, 1);
    for (const text of [prefix, `${prefix}/`, `${prefix}//`, modelJsonKey(prefix)]) expect(normalizeModelPrefix(text)).toBe(prefix);
  });

  it('rejects parts that would make a key ambiguous or escape its folder', () => {
    expect(() => shardKey('ABC')).toThrow(InvalidObjectKeyError);
    expect(() => manifestKey(`${sha}/..`)).toThrow(InvalidObjectKeyError);
    expect(() => experimentPrefix('../other')).toThrow(InvalidObjectKeyError);
    expect(() => foldModelPrefix(id, -1)).toThrow(InvalidObjectKeyError);
    expect(() => epochCheckpointPrefix(id, { kind: 'pretrain' }, 1.5)).toThrow(InvalidObjectKeyError);
    expect(() => samplingInputsKey('a/b')).toThrow(InvalidObjectKeyError);
    expect(() => nearDuplicatesKey('x')).toThrow(InvalidObjectKeyError);
    expect(() => gradCamOverlayKey(id, { trueClass: '..', imageId: 'x', predictedClass: 'normal' })).toThrow(InvalidObjectKeyError);
  });
});
