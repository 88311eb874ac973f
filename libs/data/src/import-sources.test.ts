import path from 'node:path';
import { parseExperimentConfig } from '@detl/config';
import { describe, expect, it } from 'vitest';
import { sampleSources } from './import-sources';
import { temporaryFolder, texturedPng, writeTree } from './test-support/fixtures';
import { MemoryObjectStore } from '@detl/storage/testing';

describe('sampleSources', () => {
  it('imports NIH + Cohen, selects scaled paper sizes and samples them patient-disjointly', { timeout: 60_000 }, async () => {
    const root = await temporaryFolder();
    const findings = ['Atelectasis', 'Cardiomegaly', 'Infiltration', 'Effusion', 'Nodule', 'Mass'];
    const nihRows: string[] = [];
    const files: Record<string, Uint8Array | string> = {};
    const add = (name: string, labels: string, patient: number): void => {
      nihRows.push(`${name},${labels},0,${patient},50,M,PA,1,1,1,1,`);
      files[`nih/images/${name}`] = '';
    };
    for (let i = 0; i < 30; i += 1) add(`n${i}.png`, 'No Finding', i);
    for (let i = 0; i < 36; i += 1) add(`d${i}.png`, findings[i % 6] ?? 'Mass', 100 + i);
    for (let i = 0; i < 8; i += 1) add(`p${i}.png`, 'Pneumonia', 200 + i);
    // Distinct pictures: the sampler merges near-duplicates, and greyPng's patterns are shifted copies of one another.
    for (const key of Object.keys(files)) files[key] = await texturedPng(Object.keys(files).indexOf(key) + 1);
    files['nih/Data_Entry_2017.csv'] = `Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,W,H,X,Y,\n${nihRows.join('\n')}\n`;
    const cohenRows = Array.from({ length: 8 }, (_, i) => `${i},COVID-19,PA,X-ray,c${i}.png`);
    for (let i = 0; i < 8; i += 1) files[`cohen/images/c${i}.png`] = await texturedPng(500 + i);
    files['cohen/metadata.csv'] = `patientid,finding,view,modality,filename\n${cohenRows.join('\n')}\n`;
    await writeTree(root, files);
    expect(nihRows).toHaveLength(74);

    const config = parseExperimentConfig({ seed: 4, dataset: { source: { kind: 'folder', root: 'unused' }, imageSize: 16 } });
    const result = await sampleSources({
      sources: [
        { kind: 'nih', csvPath: path.join(root, 'nih/Data_Entry_2017.csv'), imagesRoot: path.join(root, 'nih/images') },
        { kind: 'cohen', metadataPath: path.join(root, 'cohen/metadata.csv'), imagesRoot: path.join(root, 'cohen/images') },
      ],
      config,
      store: new MemoryObjectStore(),
      // 0.02 × paper: Data-B 7 normal, 6 pneumonia, 1 per finding = 6 other_disease, 6 covid.
      paper: { scale: 0.02 },
    });
    expect(result.counts.dataB).toEqual({ normal: 7, pneumonia: 6, other_disease: 6, covid: 6 });
    expect(result.manifest.options.source).toMatchObject({ kind: 'import', paper: { scale: 0.02 } });
    expect(result.manifest.options.setAssignment).toBe('subset-column');
    expect(result.manifest.options.dataAValidation).toEqual({ normal: 200, diseased: 200 });
    // Data-A takes the remaining 23 normals and 30 diseased (fewer than asked, said in warnings).
    expect(result.counts.dataA.train + result.counts.dataA.validation).toBe(53);
    expect(result.warnings.join('\n')).toMatch(/Data-A normal: asked for 951 images, 23 available/);
    const sources = new Set(result.manifest.items.map((i) => i.source));
    expect(sources).toEqual(new Set(['nih-chestxray14', 'cohen-covid-chestxray']));
  });
});
