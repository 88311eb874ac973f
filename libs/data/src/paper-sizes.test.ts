import { parseExperimentConfig } from '@detl/config';
import { describe, expect, it } from 'vitest';
import { paperSizes, selectPaperSubsets } from './paper-sizes';
import { entry } from './test-support/catalog-fixtures';
import type { CatalogEntry } from './catalog';
import { assignSets } from './split';

function nihLikeCatalog(): CatalogEntry[] {
  const entries: CatalogEntry[] = [];
  const findings = ['Atelectasis', 'Cardiomegaly', 'Infiltration', 'Effusion', 'Nodule', 'Mass', 'Fibrosis'];
  for (let i = 0; i < 400; i += 1) entries.push(entry(`nih/n${i}`, 'normal', `nih:${i}`, { findings: ['No Finding'] }));
  for (let i = 0; i < 350; i += 1) entries.push(entry(`nih/d${i}`, 'other_disease', `nih:${1000 + i}`, { findings: [findings[i % findings.length] ?? 'Mass'] }));
  for (let i = 0; i < 40; i += 1) entries.push(entry(`nih/p${i}`, 'pneumonia', `nih:${2000 + i}`, { findings: ['Pneumonia'] }));
  for (let i = 0; i < 35; i += 1) entries.push(entry(`cohen/c${i}`, 'covid', `cohen:${i}`));
  return entries;
}

describe('paper sizes', () => {
  it('scales the paper counts', () => {
    expect(paperSizes(1).dataB).toEqual({ normal: 350, pneumonia: 322, other_disease: 300, covid: 305 });
    expect(paperSizes(1).dataA).toEqual({ normal: 47_560, diseased: 40_819 });
    expect(paperSizes(0.1)).toEqual({ dataB: { normal: 35, pneumonia: 32, other_disease: 30, covid: 31 }, otherDiseasePerFinding: 5, dataA: { normal: 4756, diseased: 4082 }, dataAValidation: { normal: 1000, diseased: 1000 } });
    expect(() => paperSizes(0)).toThrow(/--scale must be a positive number/);
  });

  it('selects Data-B per finding and a patient-disjoint Data-A, saying where images are short', () => {
    const { catalog, warnings } = selectPaperSubsets(nihLikeCatalog(), { sizes: paperSizes(0.1), seed: 1 });
    const b = catalog.filter((e) => e.subset === 'B');
    expect(b.filter((e) => e.label === 'other_disease')).toHaveLength(30);
    for (const finding of ['Atelectasis', 'Cardiomegaly', 'Infiltration', 'Effusion', 'Nodule', 'Mass']) {
      expect(b.filter((e) => e.findings?.includes(finding))).toHaveLength(5);
    }
    expect(b.some((e) => e.findings?.includes('Fibrosis'))).toBe(false);
    expect(b.filter((e) => e.label === 'covid')).toHaveLength(31);
    // Data-A wants 4,756 normals; 365 remain after Data-B.
    expect(warnings.join('\n')).toMatch(/Data-A normal: asked for 4756 images, 365 available/);
    const patientsB = new Set(b.map((e) => e.patientId));
    expect(catalog.filter((e) => e.subset === 'A').some((e) => patientsB.has(e.patientId))).toBe(false);
    // The sampler follows the subset marks.
    const sets = assignSets(catalog, 1, parseExperimentConfig({}).dataset.pretrainPatientShare);
    expect(sets.rule).toBe('subset-column');
    expect(sets.dataB).toHaveLength(b.length);
  });

  it('fails under strict naming what is short', () => {
    expect(() => selectPaperSubsets(nihLikeCatalog(), { sizes: paperSizes(1), seed: 1, strict: true })).toThrow(/Data-B covid: asked for 305 images, 35 available \(strict\)/);
  });
});
