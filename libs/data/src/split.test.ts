import { describe, expect, it } from 'vitest';
import { DatasetError } from './errors';
import { assignFolds, assignSets, capPerClass, checkSplitIntegrity, splitDataA } from './split';
import { entry, syntheticCatalog } from './test-support/catalog-fixtures';

describe('assignFolds', () => {
  it('keeps each patient in one fold and spreads every class evenly', () => {
    const catalog = syntheticCatalog(23);
    // A patient with images in two classes must still sit in one fold.
    catalog.push(entry('covid/mixed', 'covid', 'normal-p0'));
    const folds = assignFolds(catalog, 5, 1);
    const foldOfPatient = new Map<string, number>();
    for (const e of catalog) {
      const fold = folds.get(e.imageId);
      expect(fold).toBeDefined();
      const before = foldOfPatient.get(e.patientId);
      if (before !== undefined) expect(fold).toBe(before);
      foldOfPatient.set(e.patientId, fold as number);
    }
    for (const label of ['normal', 'pneumonia', 'other_disease', 'covid']) {
      const perFold = [0, 1, 2, 3, 4].map((k) => catalog.filter((e) => e.label === label && folds.get(e.imageId) === k).length);
      const total = perFold.reduce((a, b) => a + b, 0);
      for (const count of perFold) expect(Math.abs(count - total / 5), `${label}: ${perFold.join(',')}`).toBeLessThanOrEqual(3);
    }
  });

  it('is reproducible for a seed and changes with it', () => {
    const catalog = syntheticCatalog(20);
    const a = assignFolds(catalog, 5, 3);
    expect([...assignFolds(catalog, 5, 3)]).toEqual([...a]);
    expect([...assignFolds(catalog, 5, 4)]).not.toEqual([...a]);
  });

  it('with stratifyBySource spreads each class\'s sources over the folds', () => {
    // 10 covid patients from source x, 10 from y: by class only, a fold may get both x or both y.
    const catalog = syntheticCatalog(10, ['normal', 'pneumonia', 'other_disease']);
    for (let p = 0; p < 20; p += 1) catalog.push(entry(`covid/q${p}`, 'covid', `covid-q${p}`, { source: p < 10 ? 'x' : 'y' }));
    const folds = assignFolds(catalog, 5, 1, { stratifyBySource: true });
    for (let k = 0; k < 5; k += 1) {
      for (const source of ['x', 'y']) {
        expect(catalog.filter((e) => e.source === source && folds.get(e.imageId) === k)).toHaveLength(2);
      }
    }
  });

  it('names the class with fewer patients than folds', () => {
    const catalog = [...syntheticCatalog(6, ['normal', 'pneumonia', 'other_disease']), ...syntheticCatalog(4, ['covid'])];
    expect(() => assignFolds(catalog, 5, 1)).toThrow(DatasetError);
    expect(() => assignFolds(catalog, 5, 1)).toThrow(/class "covid" has 4 patient\(s\) \(7 images\) in Data-B, fewer than the 5 folds/);
  });
});

describe('assignSets', () => {
  it('follows the subset column and keeps a patient together', () => {
    const catalog = [entry('n1', 'normal', 'p1', { subset: 'A' }), entry('n2', 'normal', 'p1'), entry('c1', 'covid', 'p2', { subset: 'B' })];
    const { dataA, dataB, rule } = assignSets(catalog, 1, 0.5);
    expect(dataA.map((e) => e.imageId)).toEqual(['n1', 'n2']);
    expect(dataB.map((e) => e.imageId)).toEqual(['c1']);
    expect(rule).toBe('subset-column');
  });

  it('rejects a patient marked both A and B, and covid in Data-A', () => {
    expect(() => assignSets([entry('a', 'normal', 'p', { subset: 'A' }), entry('b', 'normal', 'p', { subset: 'B' })], 1, 0.5)).toThrow(
      /Data-A and Data-B share patient "p"/,
    );
    expect(() => assignSets([entry('a', 'covid', 'p', { subset: 'A' })], 1, 0.5)).toThrow(/covid image cannot be in Data-A/);
  });

  it('splits unmarked normal / other_disease patients by share, never pneumonia or covid', () => {
    const catalog = syntheticCatalog(20);
    const { dataA, dataB, rule } = assignSets(catalog, 1, 0.5);
    expect(rule).toBe('patient-share');
    expect(dataA.every((e) => e.label === 'normal' || e.label === 'other_disease')).toBe(true);
    expect(new Set(dataA.filter((e) => e.label === 'normal').map((e) => e.patientId)).size).toBe(10);
    const patientsA = new Set(dataA.map((e) => e.patientId));
    expect(dataB.some((e) => patientsA.has(e.patientId))).toBe(false);
  });
});

describe('splitDataA and capPerClass', () => {
  it('splits Data-A by patient with the validation share', () => {
    const catalog = syntheticCatalog(10, ['normal', 'other_disease']);
    const split = splitDataA(catalog, 0.2, 1);
    const validationPatients = new Set(catalog.filter((e) => split.get(e.imageId) === 'validation').map((e) => e.patientId));
    expect(validationPatients.size).toBe(4);
    for (const e of catalog) if (validationPatients.has(e.patientId)) expect(split.get(e.imageId)).toBe('validation');
  });

  it('takes whole patients until the asked validation images per class are reached', () => {
    const catalog = syntheticCatalog(30, ['normal', 'other_disease']);
    const split = splitDataA(catalog, 0.2, 1, { normal: 10, diseased: 4 });
    const count = (label: string): number => catalog.filter((e) => e.label === label && split.get(e.imageId) === 'validation').length;
    // Patients have 1–3 images, so the count lands within two images above the target.
    expect(count('normal')).toBeGreaterThanOrEqual(10);
    expect(count('normal')).toBeLessThanOrEqual(12);
    expect(count('other_disease')).toBeGreaterThanOrEqual(4);
    expect(count('other_disease')).toBeLessThanOrEqual(6);
  });

  it('caps per class reproducibly', () => {
    const catalog = syntheticCatalog(10);
    const capped = capPerClass(catalog, 5, 1);
    expect(capped.filter((e) => e.label === 'covid')).toHaveLength(5);
    expect(capPerClass(catalog, 5, 1)).toEqual(capped);
  });
});

describe('checkSplitIntegrity', () => {
  it('fails on a patient in two folds, in both sets, or in train and validation', () => {
    expect(() =>
      checkSplitIntegrity([
        { set: 'B', imageId: 'a', patientId: 'p', fold: 0 },
        { set: 'B', imageId: 'b', patientId: 'p', fold: 1 },
      ]),
    ).toThrow(/patient "p" appears in two folds: a \(Data-B fold 0\) and b \(Data-B fold 1\)/);
    expect(() =>
      checkSplitIntegrity([
        { set: 'A', imageId: 'a', patientId: 'p', split: 'train' },
        { set: 'B', imageId: 'b', patientId: 'p', fold: 1 },
      ]),
    ).toThrow(/is in both Data-A and Data-B/);
    expect(() =>
      checkSplitIntegrity([
        { set: 'A', imageId: 'a', patientId: 'p', split: 'train' },
        { set: 'A', imageId: 'b', patientId: 'p', split: 'validation' },
      ]),
    ).toThrow(/Data-A training and validation/);
    expect(() => checkSplitIntegrity([{ set: 'B', imageId: 'a', patientId: 'p', fold: 0 }, { set: 'B', imageId: 'b', patientId: 'p', fold: 0 }])).not.toThrow();
  });
});
