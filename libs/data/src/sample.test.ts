import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseExperimentConfig, type ExperimentConfigInput } from '@detl/config';
import { describe, expect, it } from 'vitest';
import { DatasetError } from './errors';
import { importFolderDataset } from './folder-import';
import { loadImages, loadManifest, loadMasks, verifyManifest } from './load';
import { sampleCatalog, sampleDataset } from './sample';
import { generateSyntheticDataset } from './synthetic';
import { temporaryFolder, texturedPng, writeTree } from './test-support/fixtures';
import sharp from 'sharp';
import { MemoryObjectStore } from '@detl/storage/testing';

function config(dataset: ExperimentConfigInput['dataset'] = {}, seed = 5) {
  return parseExperimentConfig({ seed, dataset: { source: { kind: 'synthetic', imagesPerClass: 12, pretrainImagesPerClass: 14 }, imageSize: 32, ...dataset } });
}

describe('sampleDataset (synthetic)', () => {
  it('builds Data-B folds and Data-A splits, loads them back, and reuses shards on a re-run', async () => {
    const workDir = await temporaryFolder();
    const store = new MemoryObjectStore();
    const phases = new Set<string>();
    const first = await sampleDataset({ config: config(), store, workDir, onProgress: (p) => phases.add(p.phase) });
    expect([...phases].sort()).toEqual(['generate', 'import', 'preprocess', 'upload']);
    expect(first.counts.dataB).toEqual({ normal: 12, pneumonia: 12, other_disease: 12, covid: 12 });
    expect(first.counts.dataA.train + first.counts.dataA.validation).toBe(28);
    expect(first.shardsWritten).toBe(first.manifest.shards.length);
    expect(first.shardsReused).toBe(0);
    // The manifest is written after every shard (then the input pointer).
    expect(store.puts.at(-2)).toBe(first.manifestKey);
    expect(store.puts.slice(0, -2).every((key) => key.startsWith('shards/'))).toBe(true);
    expect(first.stored.map((s) => s.key)).toEqual(store.puts);

    const manifest = await loadManifest(store, first.manifestKey);
    expect(manifest).toEqual(first.manifest);
    expect(new Set(manifest.items.filter((i) => i.set === 'B').map((i) => i.fold))).toEqual(new Set([0, 1, 2, 3, 4]));

    const all = await loadImages(store, manifest, { set: 'B', folds: [0, 1, 2, 3, 4] });
    expect(all.count).toBe(48);
    expect(all.pixels.length).toBe(48 * 32 * 32);
    const fold0 = await loadImages(store, manifest, { set: 'B', folds: [0] });
    expect(fold0.count).toBeLessThan(48);
    expect(new Set(fold0.labels)).toEqual(new Set([0, 1, 2, 3]));
    const train = await loadImages(store, manifest, { set: 'A', split: 'train' });
    expect(new Set(train.labels)).toEqual(new Set([0, 1]));
    expect(train.imageIds.every((id) => id.startsWith('normal/a-') || id.startsWith('other_disease/a-'))).toBe(true);
    const masks = await loadMasks(store, manifest, { set: 'B', folds: [0] });
    expect(masks.imageIds).toEqual(fold0.imageIds);
    // Masks line up with labels: normal images have empty masks, covid ones do not.
    fold0.labels.forEach((label, i) => {
      const marked = masks.masks.subarray(i * 1024, (i + 1) * 1024).some((v) => v === 255);
      if (label === 0) expect(marked).toBe(false);
      if (label === 3) expect(marked).toBe(true);
    });

    const putsBefore = store.puts.length;
    const second = await sampleDataset({ config: config(), store, workDir });
    expect(second.manifestKey).toBe(first.manifestKey);
    expect(second.shardsWritten).toBe(0);
    expect(second.shardsReused).toBe(first.manifest.shards.length);
    expect(store.puts.length).toBe(putsBefore);
    expect(second.warnings.join('\n')).toMatch(/shards reused, nothing preprocessed/);

    // Without the input pointer the images are preprocessed again, but existing shards are found
    // by key and not uploaded a second time.
    const pointer = (await store.listKeys('manifests/inputs/'))[0] ?? '';
    await store.deleteObject(pointer);
    const third = await sampleDataset({ config: config(), store, workDir });
    expect(third.manifestKey).toBe(first.manifestKey);
    expect(third.shardsWritten).toBe(0);
    expect(third.shardsReused).toBe(first.manifest.shards.length);
    expect(third.stored.map((s) => s.key)).toEqual([first.manifestKey, pointer]);
  });

  it('gives a byte-identical manifest for the same catalog, config and seed, and a different one for another seed', async () => {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, seed: 1, imageSize: 48, dataB: { normal: 10, pneumonia: 10, other_disease: 10, covid: 10 }, dataA: { normal: 10, diseased: 10 } });
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    const bytes = async (seed: number): Promise<string> => {
      const store = new MemoryObjectStore();
      const result = await sampleCatalog({ catalog, config: config({ source: { kind: 'folder', root: 'fixture' } }, seed), store });
      return new TextDecoder().decode(await store.getObject(result.manifestKey));
    };
    const a = await bytes(1);
    expect(await bytes(1)).toBe(a);
    expect(await bytes(2)).not.toBe(a);
  });

  it('records options and degrades images when asked', async () => {
    const workDir = await temporaryFolder();
    const store = new MemoryObjectStore();
    const plain = await sampleDataset({ config: config(), store, workDir });
    const degraded = await sampleDataset({ config: config({ degradeToPixels: 8 }), store, workDir });
    expect(degraded.manifest.options.degradeToPixels).toBe(8);
    expect(degraded.manifest.options.crop).toBe('centre-crop-to-square');
    const a = await loadImages(store, plain.manifest, { set: 'B', folds: [0] });
    const b = await loadImages(store, degraded.manifest, { set: 'B', folds: [0] });
    expect(b.imageIds).toEqual(a.imageIds);
    // Degrading removes fine detail: neighbouring pixels differ less.
    const roughness = (pixels: Uint8Array): number => pixels.reduce((sum, v, i) => (i % 32 === 0 ? sum : sum + Math.abs(v - (pixels[i - 1] ?? 0))), 0);
    expect(roughness(b.pixels)).toBeLessThan(roughness(a.pixels) * 0.7);
  });

  it('caps Data-B per class and says when a class has fewer images', async () => {
    const workDir = await temporaryFolder();
    const result = await sampleDataset({ config: config({ maxImagesPerClass: 10 }), store: new MemoryObjectStore(), workDir });
    expect(result.counts.dataB).toEqual({ normal: 10, pneumonia: 10, other_disease: 10, covid: 10 });
    const short = await sampleDataset({ config: config({ maxImagesPerClass: 15 }), store: new MemoryObjectStore(), workDir });
    expect(short.counts.dataB.covid).toBe(12);
    expect(short.warnings.join('\n')).toMatch(/"covid": 12 images available, fewer than maxImagesPerClass 15/);
  });
});

describe('sampleDataset (folder) bad input', () => {
  async function folderWith(covidPatients: number): Promise<string> {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, seed: 3, imageSize: 32, dataB: { normal: 8, pneumonia: 8, other_disease: 8, covid: 8 }, dataA: { normal: 6, diseased: 6 } });
    // Keep only the first `covidPatients` covid patients' images.
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    const covidPatientIds = [...new Set(catalog.filter((e) => e.label === 'covid').map((e) => e.patientId))];
    const keep = new Set(covidPatientIds.slice(0, covidPatients));
    const removed = catalog.filter((e) => e.label === 'covid' && !keep.has(e.patientId));
    for (const e of removed) await rm(e.path);
    const csv = catalog.filter((e) => !removed.includes(e)).map((e) => `${e.file},${e.label},${e.patientId},${e.subset ?? ''},synthetic`);
    await writeFile(path.join(root, 'labels.csv'), `file,label,patient_id,subset,source\n${csv.join('\n')}\n`);
    return root;
  }

  it('names the class with fewer patients than folds and writes nothing', async () => {
    const root = await folderWith(3);
    const store = new MemoryObjectStore();
    const error = await sampleDataset({ config: config({ source: { kind: 'folder', root } }), store, workDir: root }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as Error).message).toMatch(/class "covid" has 3 patient\(s\) \(\d+ images\) in Data-B, fewer than the 5 folds/);
    expect(store.puts).toEqual([]);
  });

  it('fails on a corrupt image by default, and skips and records it on request', async () => {
    const root = await folderWith(8);
    await mkdir(path.join(root, 'covid'), { recursive: true });
    await writeFile(path.join(root, 'covid', 'broken.png'), Buffer.from('not a png'));
    const lines = `covid/broken.png,covid,broken-patient,B,synthetic\n`;
    await writeFile(path.join(root, 'labels.csv'), lines, { flag: 'a' });
    const store = new MemoryObjectStore();
    await expect(sampleDataset({ config: config({ source: { kind: 'folder', root } }), store, workDir: root })).rejects.toThrow(/broken\.png: unreadable image/);
    expect(store.puts).toEqual([]);
    const skipped = await sampleDataset({ config: config({ source: { kind: 'folder', root }, onCorruptImage: 'skip' }), store, workDir: root });
    expect(skipped.skipped).toEqual([{ path: 'covid/broken.png', reason: expect.stringMatching(/unreadable image/) as unknown as string }]);
    expect(skipped.manifest.skipped).toEqual(skipped.skipped);
  });
});

describe('sampleCatalog confound options', () => {
  it('leaves out excluded sources and low-resolution images and records both', async () => {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, seed: 2, imageSize: 32, dataB: { normal: 10, pneumonia: 10, other_disease: 10, covid: 10 }, dataA: { normal: 8, diseased: 8 } });
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    // Relabel: every fifth normal comes from a second source, every other A-set image is low resolution.
    const relabelled = catalog.map((e, i) => ({
      ...e,
      ...(e.label === 'normal' && i % 5 === 0 ? { source: 'other-hospital' } : {}),
      ...(e.subset === 'A' && i % 2 === 0 ? { lowResolution: true } : {}),
    }));
    const store = new MemoryObjectStore();
    const result = await sampleCatalog({
      catalog: relabelled,
      config: config(),
      store,
      confounds: { excludeSources: ['other-hospital'], excludeLowResolution: true },
      sourceDescription: { kind: 'test-catalog' },
    });
    expect(result.manifest.options).toMatchObject({ excludeSources: ['other-hospital'], excludeLowResolution: true, source: { kind: 'test-catalog' } });
    const kept = new Set(result.manifest.items.map((i) => i.imageId));
    for (const e of relabelled) {
      if (e.source === 'other-hospital' || e.lowResolution) expect(kept.has(e.imageId), e.imageId).toBe(false);
    }
    expect(result.warnings.join('\n')).toMatch(/images left out by source \/ resolution filters/);
  });
});

describe('sampleCatalog shard size', () => {
  it('cuts partitions into several shards and loads across them', async () => {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, seed: 4, imageSize: 32, dataB: { normal: 10, pneumonia: 10, other_disease: 10, covid: 10 }, dataA: { normal: 6, diseased: 6 } });
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    const whole = await sampleCatalog({ catalog, config: config(), store: new MemoryObjectStore() });
    const store = new MemoryObjectStore();
    // Three 32 px images per shard.
    const cut = await sampleCatalog({ catalog, config: config(), store, maxShardBytes: 3 * 32 * 32 });
    expect(cut.manifest.options.maxShardBytes).toBe(3072);
    expect(cut.manifest.shards.filter((s) => s.kind === 'images').every((s) => s.count <= 3)).toBe(true);
    expect(cut.manifest.shards.length).toBeGreaterThan(whole.manifest.shards.length);
    const a = await loadImages(store, cut.manifest, { set: 'B', folds: [1, 3] });
    const b = await loadImages(new MemoryObjectStore(), whole.manifest, { set: 'B', folds: [1, 3] }).catch(() => null);
    expect(b).toBeNull(); // a different store has none of the shards
    const wholeStore = new MemoryObjectStore();
    const again = await sampleCatalog({ catalog, config: config(), store: wholeStore });
    const c = await loadImages(wholeStore, again.manifest, { set: 'B', folds: [1, 3] });
    expect(a.imageIds).toEqual(c.imageIds);
    expect(Buffer.from(a.pixels).equals(Buffer.from(c.pixels))).toBe(true);
    expect(Array.from(a.labels)).toEqual(Array.from(c.labels));
  });

  it('rejects a shard whose bytes no longer match the manifest', async () => {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, seed: 4, imageSize: 32, dataB: { normal: 9, pneumonia: 9, other_disease: 9, covid: 9 }, dataA: { normal: 4, diseased: 4 } });
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    const store = new MemoryObjectStore();
    const result = await sampleCatalog({ catalog, config: config(), store });
    const shard = result.manifest.shards[0];
    if (!shard) throw new Error('no shard');
    const bytes = await store.getObject(shard.key);
    bytes[0] = (bytes[0] ?? 0) ^ 0xff;
    await store.putObject(shard.key, bytes);
    await expect(loadImages(store, result.manifest, { set: 'B', folds: [0] })).rejects.toThrow(DatasetError);
  });
});

describe('sampleCatalog class-size message', () => {
  it('tells how many normal patients went to Data-A when Data-B is left with too few', async () => {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, seed: 6, imageSize: 32, dataB: { normal: 0, pneumonia: 8, other_disease: 0, covid: 8 }, dataA: { normal: 0, diseased: 0 } });
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    // Drop the subset column so the patient-share rule applies; add 6 single-image normal and other_disease patients.
    const base = catalog.map(({ subset: _subset, ...rest }) => rest);
    const extra = (['normal', 'other_disease'] as const).flatMap((label) =>
      Array.from({ length: 6 }, (_, i) => ({ ...(base[0] as (typeof base)[number]), imageId: `${label}/x${i}`, file: `${label}/x${i}.png`, label, patientId: `${label}-x${i}`, sha256: `${i}`.padStart(64, label === 'normal' ? 'a' : 'b') })),
    );
    const error = await sampleCatalog({ catalog: [...base, ...extra], config: config({ source: { kind: 'folder', root } }), store: new MemoryObjectStore() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as Error).message).toMatch(/class "normal" has 3 patient\(s\) \(3 images\) in Data-B, fewer than the 5 folds \(the source has 6 normal images of 6 patients; 3 of those patients went to Data-A \(dataset.pretrainPatientShare 0.5\)\)/);
  });
});

describe('verifyManifest', () => {
  it('passes a fresh sampling and lists every later problem', async () => {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, seed: 8, imageSize: 32, dataB: { normal: 9, pneumonia: 9, other_disease: 9, covid: 9 }, dataA: { normal: 4, diseased: 4 } });
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    const store = new MemoryObjectStore();
    const result = await sampleCatalog({ catalog, config: config(), store });
    expect(await verifyManifest(store, result.manifestKey)).toMatchObject({ problems: [], items: result.manifest.items.length });

    const [first, second] = result.manifest.shards;
    if (!first || !second) throw new Error('expected two shards');
    await store.deleteObject(first.key);
    const tampered = { ...result.manifest, items: result.manifest.items.map((item, i) => (i === 0 ? { ...item, fold: ((item.fold ?? 0) + 1) % 5 } : item)) };
    // Put the first item's patient into a second fold: a leak the verifier must name.
    const leaked = tampered.items[0];
    const twin = tampered.items.find((item, i) => i > 0 && item.set === 'B' && item.fold === leaked?.fold && item.patientId !== leaked?.patientId);
    if (!leaked || !twin) throw new Error('fixture');
    tampered.items = tampered.items.map((item) => (item === twin ? { ...item, patientId: leaked.patientId, fold: (leaked.fold ?? 0) + 1 } : item));
    const key = 'manifests/tampered.json';
    await store.putObject(key, JSON.stringify(tampered));
    const report = await verifyManifest(store, key);
    expect(report.problems.join('\n')).toMatch(new RegExp(`${first.key}: missing`));
    expect(report.problems.join('\n')).toMatch(/appears in two folds/);
  });
});

describe('sampleDataset (stored manifest)', () => {
  it('uses a verified earlier sampling as it is, and rejects one that does not fit the experiment', async () => {
    const workDir = await temporaryFolder();
    const store = new MemoryObjectStore();
    const first = await sampleDataset({ config: config(), store, workDir });
    const putsBefore = store.puts.length;
    const fromManifest = config({ source: { kind: 'manifest', key: first.manifestKey } });
    const reused = await sampleDataset({ config: fromManifest, store, workDir });
    expect(reused.manifestKey).toBe(first.manifestKey);
    expect(reused.counts).toEqual(first.counts);
    expect(reused.shardsWritten).toBe(0);
    expect(reused.shardsReused).toBe(first.manifest.shards.length);
    expect(store.puts.length).toBe(putsBefore);

    const otherSize = config({ source: { kind: 'manifest', key: first.manifestKey }, imageSize: 64 });
    await expect(sampleDataset({ config: otherSize, store, workDir })).rejects.toThrow(/image size 32 px, the experiment's dataset.imageSize is 64/);
    const otherFolds = config({ source: { kind: 'manifest', key: first.manifestKey }, folds: 3 });
    await expect(sampleDataset({ config: otherFolds, store, workDir })).rejects.toThrow(DatasetError);

    const shard = first.manifest.shards[0];
    if (!shard) throw new Error('no shard');
    await store.putObject(shard.key, new Uint8Array(shard.sizeBytes));
    await expect(sampleDataset({ config: fromManifest, store, workDir })).rejects.toThrow(/failed verification/);
  }, 60_000);
});

describe('sampleCatalog dataset.dataB', () => {
  async function unmarkedCatalog() {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, seed: 8, imageSize: 32, dataB: { normal: 12, pneumonia: 6, other_disease: 12, covid: 6 }, dataA: { normal: 0, diseased: 0 } });
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    // No subset column: the pretrainPatientShare rule decides who is held out for Data-A.
    return { root, catalog: catalog.map(({ subset: _subset, ...rest }) => rest) };
  }

  it('holds a share of normal / other_disease patients out of Data-B by default, and none with dataB all', async () => {
    const { root, catalog } = await unmarkedCatalog();
    const store = new MemoryObjectStore();
    const excluded = await sampleCatalog({ catalog, config: config({ source: { kind: 'folder', root } }), store });
    const all = await sampleCatalog({ catalog, config: parseExperimentConfig({ seed: 5, dataset: { source: { kind: 'folder', root }, imageSize: 32, dataB: 'all' }, fineTune: { freeze: 'scratch' } }), store });
    const inB = (result: typeof all) => result.manifest.items.filter((item) => item.set === 'B').length;
    expect(excluded.counts.dataA.train + excluded.counts.dataA.validation).toBeGreaterThan(0);
    expect(inB(excluded) + excluded.counts.dataA.train + excluded.counts.dataA.validation).toBe(catalog.length);
    expect(inB(all)).toBe(catalog.length);
    expect(all.counts.dataA).toEqual({ train: 0, validation: 0 });
    expect(all.manifest.options).toMatchObject({ dataB: 'all', setAssignment: 'all-to-data-b' });
    expect(excluded.manifest.options).toMatchObject({ dataB: 'exclude-data-a', setAssignment: 'patient-share' });
    expect((await verifyManifest(store, all.manifestKey)).problems).toEqual([]);
    // That sampling has nothing to pretrain on: a run on it must train from scratch.
    const onStored = (freeze: 'scratch' | 'none') =>
      sampleDataset({ config: parseExperimentConfig({ seed: 5, dataset: { source: { kind: 'manifest', key: all.manifestKey }, imageSize: 32 }, fineTune: { freeze } }), store, workDir: root });
    await expect(onStored('none')).rejects.toThrow(/no Data-A images \(sampled with dataset\.dataB 'all'\), and fineTune\.freeze 'none' needs pretraining/);
    expect((await onStored('scratch')).manifestKey).toBe(all.manifestKey);
  });

  it('is refused by the configuration unless the recipe trains from scratch', () => {
    expect(() => parseExperimentConfig({ dataset: { dataB: 'all' } })).toThrow(/dataset\.dataB: 'all' leaves no patients for pretraining; it needs fineTune\.freeze 'scratch' \(got 'below-last-conv-block'\)/);
    expect(parseExperimentConfig({ dataset: { dataB: 'all' }, fineTune: { freeze: 'scratch' } }).dataset.dataB).toBe('all');
    expect(parseExperimentConfig({}).dataset.dataB).toBe('exclude-data-a');
  });
});

describe('sampleCatalog near-duplicates', () => {
  it('merges the patient groups of a rotated, re-contrasted copy, keeps the pair in one fold and records it', { timeout: 120_000 }, async () => {
    const root = await temporaryFolder();
    const files: Record<string, Uint8Array | string> = {};
    const rows: string[] = [];
    let seed = 100;
    for (const label of ['normal', 'pneumonia', 'other_disease', 'covid']) {
      for (let patient = 0; patient < 7; patient += 1) {
        files[`${label}/p${patient}.png`] = await texturedPng((seed += 1));
        rows.push(`${label}/p${patient}.png,${label},${label}-${patient},B,hospital-${patient % 2}`);
      }
    }
    // The same covid picture again, from another collection: turned 4°, another gamma, other patient id.
    const copy = await sharp(await sharp(files['covid/p0.png'] as Buffer).gamma(1.8, 1).png().toBuffer()).rotate(4, { background: 'black' }).resize(160, 160).png().toBuffer();
    files['covid/copy-of-p0.png'] = copy;
    rows.push('covid/copy-of-p0.png,covid,other-collection-9,B,collection-b');
    files['labels.csv'] = `file,label,patient_id,subset,source\n${rows.join('\n')}\n`;
    await writeTree(root, files);
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    const store = new MemoryObjectStore();
    const result = await sampleCatalog({ catalog, config: parseExperimentConfig({ seed: 3, dataset: { source: { kind: 'folder', root }, imageSize: 32, dataB: 'all' }, fineTune: { freeze: 'scratch' } }), store });
    expect(result.manifest.nearDuplicates.pairs).toEqual([expect.objectContaining({ a: 'covid/copy-of-p0', b: 'covid/p0' })]);
    expect(result.manifest.nearDuplicates.mergedPatients).toEqual([{ patientId: 'covid-0', members: ['covid-0', 'other-collection-9'] }]);
    expect(result.warnings.join('\n')).toMatch(/1 near-duplicate image pair\(s\)/);
    const [original, duplicate] = ['covid/p0', 'covid/copy-of-p0'].map((id) => result.manifest.items.find((item) => item.imageId === id));
    expect(duplicate?.patientId).toBe('covid-0');
    expect(duplicate?.fold).toBe(original?.fold);
    expect(result.stored.map((object) => object.key).filter((key) => key.startsWith('manifests/near-duplicates/'))).toHaveLength(1);
    // A second sampling of the same images finds the stored search instead of decoding them again.
    const phases = new Set<string>();
    const again = await sampleCatalog({ catalog, config: parseExperimentConfig({ seed: 3, dataset: { source: { kind: 'folder', root }, imageSize: 32, dataB: 'all' }, fineTune: { freeze: 'scratch' } }), store, onProgress: (p) => phases.add(p.phase) });
    expect(phases.has('near-duplicates')).toBe(false);
    expect(again.manifestKey).toBe(result.manifestKey);
    const verification = await verifyManifest(store, result.manifestKey);
    expect(verification.problems).toEqual([]);
    expect(verification.nearDuplicates.pairs).toHaveLength(1);

    // A stored sampling whose pair spans two folds (e.g. written before the detector) fails the check.
    const moved = { ...result.manifest, items: result.manifest.items.map((item) => (item.imageId === 'covid/copy-of-p0' ? { ...item, patientId: 'other-collection-9', fold: ((item.fold ?? 0) + 1) % 5 } : item)) };
    const key = `manifests/${'e'.repeat(64)}.json`;
    await store.putObject(key, JSON.stringify(moved), 'application/json');
    expect((await verifyManifest(store, key)).problems.join('\n')).toMatch(/near-duplicate images on two sides of a split: covid\/copy-of-p0 \(Data-B fold \d\) and covid\/p0 \(Data-B fold \d\)/);
  });

  it('leaves out a subset-A image that is a copy of a Data-B image, and says so', { timeout: 120_000 }, async () => {
    const root = await temporaryFolder();
    const files: Record<string, Uint8Array | string> = {};
    const rows: string[] = [];
    let seed = 300;
    const add = async (file: string, label: string, patient: string, subset: 'A' | 'B', bytes?: Buffer): Promise<void> => {
      files[file] = bytes ?? (await texturedPng((seed += 1)));
      rows.push(`${file},${label},${patient},${subset},hospital`);
    };
    for (const label of ['normal', 'pneumonia', 'other_disease', 'covid']) for (let p = 0; p < 6; p += 1) await add(`${label}/b${p}.png`, label, `${label}-b${p}`, 'B');
    for (const label of ['normal', 'other_disease']) for (let p = 0; p < 3; p += 1) await add(`${label}/a${p}.png`, label, `${label}-a${p}`, 'A');
    // The pretraining set got a re-contrasted copy of a covid test image, labelled normal.
    await add('normal/a-copy.png', 'normal', 'normal-a9', 'A', await sharp(files['covid/b0.png'] as Buffer).gamma(1.6, 1).png().toBuffer());
    files['labels.csv'] = `file,label,patient_id,subset,source\n${rows.join('\n')}\n`;
    await writeTree(root, files);
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    const result = await sampleCatalog({ catalog, config: config({ source: { kind: 'folder', root } }), store: new MemoryObjectStore() });
    expect(result.manifest.nearDuplicates.pairs.map((pair) => [pair.a, pair.b])).toEqual([['covid/b0', 'normal/a-copy']]);
    expect(result.manifest.items.some((item) => item.imageId === 'normal/a-copy')).toBe(false);
    expect(result.manifest.items.find((item) => item.imageId === 'covid/b0')?.set).toBe('B');
    expect(result.skipped).toEqual([{ path: 'normal/a-copy.png', reason: expect.stringMatching(/marked subset A, but a near-duplicate of a Data-B image/) as unknown as string }]);
    expect(result.warnings.join('\n')).toMatch(/1 image\(s\) the source marks subset A left out/);
  });
});
