import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cohenFindingClass, importCohenCovidCollection, importNihChestXray14, mergeImports } from './public-import';
import { greyPng, temporaryFolder, writeTree } from './test-support/fixtures';

const nihHeader = 'Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n';

async function nihFixture(csvRows: string[], images: string[]): Promise<string> {
  const root = await temporaryFolder();
  const files: Record<string, Uint8Array | string> = { 'Data_Entry_2017.csv': nihHeader + csvRows.join('\n') + '\n' };
  for (const [i, name] of images.entries()) files[`images_00${(i % 2) + 1}/images/${name}`] = await greyPng(i);
  await writeTree(root, files);
  return root;
}

describe('importNihChestXray14', () => {
  it('maps findings to classes, keeps patient and view, finds images in sub-folders', async () => {
    const root = await nihFixture(
      [
        '00000001_000.png,Cardiomegaly|Effusion,0,1,58,M,PA,2682,2749,0.143,0.143,',
        '00000001_001.png,No Finding,1,1,58,M,PA,2894,2729,0.143,0.143,',
        '00000002_000.png,Pneumonia|Infiltration,0,2,40,F,AP,2500,2048,0.168,0.168,',
      ],
      ['00000001_000.png', '00000001_001.png', '00000002_000.png'],
    );
    const { catalog } = await importNihChestXray14({ csvPath: path.join(root, 'Data_Entry_2017.csv'), imagesRoot: root, onCorruptImage: 'fail' });
    expect(catalog.map((e) => [e.imageId, e.label, e.patientId, e.view, e.findings])).toEqual([
      ['nih/00000001_000', 'other_disease', 'nih:1', 'PA', ['Cardiomegaly', 'Effusion']],
      ['nih/00000001_001', 'normal', 'nih:1', 'PA', ['No Finding']],
      ['nih/00000002_000', 'pneumonia', 'nih:2', 'AP', ['Pneumonia', 'Infiltration']],
    ]);
    const apOnly = await importNihChestXray14({ csvPath: path.join(root, 'Data_Entry_2017.csv'), imagesRoot: root, onCorruptImage: 'fail', views: ['AP'] });
    expect(apOnly.catalog.map((e) => e.imageId)).toEqual(['nih/00000002_000']);
  });

  it('names line and column of an unknown finding, a missing image and a missing column', async () => {
    const bad = await nihFixture(['a.png,No Finding,0,1,1,M,PA,1,1,1,1,', 'b.png,Covid,0,2,1,M,PA,1,1,1,1,'], ['a.png', 'b.png']);
    await expect(importNihChestXray14({ csvPath: path.join(bad, 'Data_Entry_2017.csv'), imagesRoot: bad, onCorruptImage: 'fail' })).rejects.toThrow(
      /Data_Entry_2017\.csv:3 column "Finding Labels": unknown finding "Covid"/,
    );
    const missing = await nihFixture(['a.png,No Finding,0,1,1,M,PA,1,1,1,1,', 'gone.png,Mass,0,2,1,M,PA,1,1,1,1,'], ['a.png']);
    const options = { csvPath: path.join(missing, 'Data_Entry_2017.csv'), imagesRoot: missing, onCorruptImage: 'fail' as const };
    await expect(importNihChestXray14(options)).rejects.toThrow(/:3 column "Image Index": image "gone.png" is listed but not found/);
    const partial = await importNihChestXray14({ ...options, onMissingImage: 'skip' });
    expect(partial.catalog).toHaveLength(1);
    expect(partial.warnings.join('\n')).toMatch(/1 listed images not found/);
    const root = await temporaryFolder();
    await writeTree(root, { 'Data_Entry_2017.csv': 'Image Index,Finding Labels,View Position\na.png,Mass,PA\n' });
    await expect(importNihChestXray14({ csvPath: path.join(root, 'Data_Entry_2017.csv'), imagesRoot: root, onCorruptImage: 'fail' })).rejects.toThrow(
      /:1: missing column "Patient ID"/,
    );
  });

  it('rejects images present but unlisted', async () => {
    const root = await nihFixture(['a.png,No Finding,0,1,1,M,PA,1,1,1,1,'], ['a.png', 'extra.png']);
    await expect(importNihChestXray14({ csvPath: path.join(root, 'Data_Entry_2017.csv'), imagesRoot: root, onCorruptImage: 'fail' })).rejects.toThrow(
      /1 image\(s\) present but not listed.*extra\.png/,
    );
  });
});

describe('importCohenCovidCollection', () => {
  it('keeps frontal X-rays, maps findings by the documented table and reports what it left out', async () => {
    const root = await temporaryFolder();
    await writeTree(root, {
      'metadata.csv': [
        'patientid,offset,finding,view,modality,folder,filename',
        '1,0,COVID-19,PA,X-ray,images,c1.png',
        '1,2,"COVID-19, ARDS",AP Supine,X-ray,images,c2.png',
        '2,,Pneumonia/Bacterial/Streptococcus,PA,X-ray,images,p1.png',
        '3,,No Finding,AP,X-ray,images,n1.png',
        '4,,ARDS,PA,X-ray,images,x1.png',
        '5,,COVID-19,L,X-ray,images,lat.png',
        '6,,COVID-19,Axial,CT,volumes,ct.nii.gz',
        '7,,Tuberculosis,PA,X-ray,images,tb.png',
      ].join('\n'),
      'images/c1.png': await greyPng(1),
      'images/c2.png': await greyPng(2),
      'images/p1.png': await greyPng(3),
      'images/n1.png': await greyPng(4),
      'images/x1.png': await greyPng(5),
      'images/lat.png': await greyPng(6),
      'images/tb.png': await greyPng(7),
    });
    const options = { metadataPath: path.join(root, 'metadata.csv'), imagesRoot: path.join(root, 'images'), onCorruptImage: 'fail' as const };
    const result = await importCohenCovidCollection(options);
    expect(result.catalog.map((e) => [e.imageId, e.label, e.patientId])).toEqual([
      ['cohen/c1', 'covid', 'cohen:1'],
      ['cohen/c2', 'covid', 'cohen:1'],
      ['cohen/n1', 'normal', 'cohen:3'],
      ['cohen/p1', 'pneumonia', 'cohen:2'],
    ]);
    expect(result.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/1 row\(s\) left out \(finding ARDS\)/), expect.stringMatching(/\(view L\)/), expect.stringMatching(/\(modality CT\)/)]));
    const overridden = await importCohenCovidCollection({ ...options, findingClasses: { Tuberculosis: 'other_disease', 'No Finding': null } });
    expect(overridden.catalog.map((e) => [e.imageId, e.label])).toContainEqual(['cohen/tb', 'other_disease']);
    expect(overridden.catalog.some((e) => e.label === 'normal')).toBe(false);
  });

  it('imports a filename listed twice (as the collection\'s own metadata.csv does) once, its two patients as one group', async () => {
    // As in the real metadata.csv: 000001-24.jpg on two rows, under patient ids 285 and 339, same
    // image; 339 has another image, which joins the merged group. A repeat with another class is
    // left out: its class cannot be told.
    const root = await temporaryFolder();
    await writeTree(root, {
      'metadata.csv': [
        'patientid,offset,sex,age,finding,RT_PCR_positive,survival,view,modality,date,location,folder,filename',
        '285,0,M,65,Pneumonia/Viral/COVID-19,Y,,PA,X-ray,2020,Spain,images,000001-24.jpg',
        '339,,M,65,Pneumonia/Viral/COVID-19,Y,,PA,X-ray,2020,Spain,images,000001-24.jpg',
        '339,3,M,65,Pneumonia/Viral/COVID-19,Y,,AP,X-ray,2020,Spain,images,000001-25.jpg',
        '400,,F,40,No Finding,,,PA,X-ray,2020,Italy,images,n1.png',
        '401,,F,41,Pneumonia/Bacterial/Streptococcus,,,PA,X-ray,2020,Italy,images,clash.png',
        '402,,F,41,No Finding,,,PA,X-ray,2020,Italy,images,clash.png',
        '500,,M,50,COVID-19,Y,,PA,X-ray,2020,Italy,images,front.png',
        '501,,M,50,COVID-19,Y,,L,X-ray,2020,Italy,images,front.png',
        '501,,M,50,COVID-19,Y,,PA,X-ray,2020,Italy,images,later.png',
      ].join('\n'),
      'images/000001-24.jpg': await greyPng(1),
      'images/000001-25.jpg': await greyPng(2),
      'images/n1.png': await greyPng(3),
      'images/clash.png': await greyPng(4),
      'images/front.png': await greyPng(5),
      'images/later.png': await greyPng(6),
    });
    const metadataPath = path.join(root, 'metadata.csv');
    const result = await importCohenCovidCollection({ metadataPath, imagesRoot: path.join(root, 'images'), onCorruptImage: 'fail' });
    expect(result.catalog.map((e) => [e.imageId, e.label, e.patientId])).toEqual([
      ['cohen/000001-24', 'covid', 'cohen:285+339'],
      ['cohen/000001-25', 'covid', 'cohen:285+339'],
      // front.png's lateral row under 501 is left out by its view, yet 500 and 501 are one person.
      ['cohen/front', 'covid', 'cohen:500+501'],
      ['cohen/later', 'covid', 'cohen:500+501'],
      ['cohen/n1', 'normal', 'cohen:400'],
    ]);
    expect(result.warnings).toContain(`${metadataPath}: "front.png" is listed on lines 8, 9 under patients 500 and 501; merged into one patient group (cohen:500+501)`);
    expect(result.warnings).toContain(`${metadataPath}: "000001-24.jpg" is listed on lines 2, 3; kept once; patients 285 and 339 merged into one patient group (cohen:285+339)`);
    expect(result.warnings).toContain(`${metadataPath}: "clash.png" is listed on lines 6, 7 as pneumonia and normal; left out`);
  });

  it('classifies the 2020 flat and the later hierarchical vocabularies', () => {
    expect(cohenFindingClass('COVID-19')).toBe('covid');
    expect(cohenFindingClass('Pneumonia/Viral/COVID-19')).toBe('covid');
    expect(cohenFindingClass('Streptococcus')).toBe('pneumonia');
    expect(cohenFindingClass('Pneumonia/Fungal/Pneumocystis')).toBe('pneumonia');
    expect(cohenFindingClass('ARDS')).toBeNull();
    expect(cohenFindingClass('todo')).toBeNull();
  });

  it('names a bad file name by line and column, and merges with NIH dropping cross-source copies', async () => {
    const root = await temporaryFolder();
    await writeTree(root, { 'metadata.csv': 'patientid,finding,view,filename\n1,COVID-19,PA,../secret.png\n' });
    await expect(importCohenCovidCollection({ metadataPath: path.join(root, 'metadata.csv'), imagesRoot: root, onCorruptImage: 'fail' })).rejects.toThrow(
      /metadata\.csv:2 column "filename"/,
    );
    const nih = await nihFixture(['a.png,No Finding,0,1,1,M,PA,1,1,1,1,'], ['a.png']);
    const cohen = await temporaryFolder();
    await writeTree(cohen, { 'metadata.csv': 'patientid,finding,view,filename\n9,COVID-19,PA,copy.png\n', 'copy.png': await greyPng(0) });
    const merged = mergeImports(
      await importNihChestXray14({ csvPath: path.join(nih, 'Data_Entry_2017.csv'), imagesRoot: nih, onCorruptImage: 'fail' }),
      await importCohenCovidCollection({ metadataPath: path.join(cohen, 'metadata.csv'), imagesRoot: cohen, onCorruptImage: 'fail' }),
    );
    expect(merged.catalog).toHaveLength(1);
    expect(merged.duplicates[0]?.conflictingLabels).toBe(true);
  });
});
