import { readdir, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from './errors';
import { importFolderDataset } from './folder-import';
import { greyPng, temporaryFolder, writeTree } from './test-support/fixtures';

let png: Buffer[] = [];
beforeAll(async () => {
  png = await Promise.all([0, 1, 2, 3, 4, 5].map((v) => greyPng(v)));
});

function image(i: number): Buffer {
  const bytes = png[i];
  if (!bytes) throw new Error(`no fixture ${i}`);
  return bytes;
}

const header = 'file,label,patient_id,subset,source\n';

async function dataset(files: Record<string, Uint8Array | string>): Promise<string> {
  const root = await temporaryFolder();
  await writeTree(root, files);
  return root;
}

async function importError(root: string, onCorruptImage: 'fail' | 'skip' = 'fail'): Promise<DatasetError> {
  const error = await importFolderDataset(root, { onCorruptImage }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DatasetError);
  return error as DatasetError;
}

describe('importFolderDataset', () => {
  it('reads classes, patients, subset and masks', async () => {
    const root = await dataset({
      'normal/a.png': image(0),
      'covid/b.png': image(1),
      'masks/covid/b.png': image(2),
      'labels.csv': `${header}normal/a.png,normal,p1,A,s1\ncovid/b.png,covid,p2,,s2\n`,
    });
    const { catalog, warnings } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    expect(warnings).toEqual([]);
    expect(catalog.map((e) => [e.imageId, e.label, e.patientId, e.subset, e.source])).toEqual([
      ['covid/b', 'covid', 'p2', undefined, 's2'],
      ['normal/a', 'normal', 'p1', 'A', 's1'],
    ]);
    expect(catalog[0]?.maskPath).toBe(path.join(root, 'masks', 'covid', 'b.png'));
    expect(catalog[0]?.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('prefers patient_group and reads lowres_source and view', async () => {
    const root = await dataset({
      'normal/a.png': image(0),
      'labels.csv': 'file,label,patient_id,patient_group,lowres_source,view\nnormal/a.png,normal,nih:1,nih:merged,1,PA\n',
    });
    const [entry] = (await importFolderDataset(root, { onCorruptImage: 'fail' })).catalog;
    expect(entry).toMatchObject({ patientId: 'nih:merged', lowResolution: true, view: 'PA' });
  });

  it('without labels.csv makes each image its own patient and says so', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'normal/b.jpg': await sharp(image(1)).jpeg().toBuffer() });
    const { catalog, warnings } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    expect(new Set(catalog.map((e) => e.patientId)).size).toBe(2);
    expect(warnings.join('\n')).toMatch(/own patient/);
  });

  it('keeps image ids unique when a.png and a.jpg both exist', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'normal/a.jpg': await sharp(image(1)).jpeg().toBuffer(), 'normal/b.png': image(2) });
    const { catalog } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    expect(catalog.map((e) => e.imageId).sort()).toEqual(['normal/a.jpg', 'normal/a.png', 'normal/b']);
  });

  it('decodes 16-bit PNGs', async () => {
    const bytes = await sharp(image(0)).toColourspace('grey16').png().toBuffer();
    expect((await sharp(bytes).metadata()).depth).toBe('ushort');
    const root = await dataset({ 'normal/a.png': bytes });
    expect((await importFolderDataset(root, { onCorruptImage: 'fail' })).catalog).toHaveLength(1);
  });

  it('names an unknown class folder', async () => {
    const root = await dataset({ 'tuberculosis/a.png': image(0) });
    expect((await importError(root)).message).toMatch(/tuberculosis.*unknown class folder/);
  });

  it('names a missing column', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'labels.csv': 'file,patient_id\nnormal/a.png,p\n' });
    const error = await importError(root);
    expect(error.message).toMatch(/labels\.csv:1: missing column "label"/);
    expect(error.location?.column).toBe('label');
  });

  it('names line and column of an unknown label', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'normal/b.png': image(1), 'labels.csv': `${header}normal/a.png,normal,p1,,\nnormal/b.png,healthy,p2,,\n` });
    expect((await importError(root)).message).toMatch(/labels\.csv:3 column "label": unknown label "healthy"/);
  });

  it('rejects a label that disagrees with the folder', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'labels.csv': `${header}normal/a.png,covid,p1,,\n` });
    expect((await importError(root)).message).toMatch(/:2 column "label": label "covid" disagrees with the image's folder "normal\/"/);
  });

  it('rejects an image listed but absent', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'labels.csv': `${header}normal/a.png,normal,p1,,\nnormal/gone.png,normal,p2,,\n` });
    expect((await importError(root)).message).toMatch(/:3 column "file": image "normal\/gone.png" is listed but not present/);
  });

  it('rejects an image present but unlisted', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'normal/b.png': image(1), 'labels.csv': `${header}normal/a.png,normal,p1,,\n` });
    expect((await importError(root)).message).toMatch(/1 image\(s\) present but not listed: normal\/b.png/);
  });

  it('rejects absolute paths and ".." in the file column', async () => {
    for (const bad of ['/etc/passwd', '../normal/a.png', 'normal/../normal/a.png']) {
      const root = await dataset({ 'normal/a.png': image(0), 'labels.csv': `${header}${bad},normal,p1,,\n` });
      expect((await importError(root)).message).toMatch(/:2 column "file": .* must be a path relative/);
    }
  });

  it('rejects a bad subset value', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'labels.csv': `${header}normal/a.png,normal,p1,C,\n` });
    expect((await importError(root)).message).toMatch(/:2 column "subset"/);
  });

  it.each([
    ['non-image bytes', Buffer.from('this is not an image at all'), /unreadable image/],
    ['zero-byte file', Buffer.alloc(0), /zero-byte file/],
  ])('fails on %s naming the file, or skips it', async (_name, bytes, pattern) => {
    const root = await dataset({ 'normal/a.png': image(0), 'normal/bad.png': bytes });
    const error = await importError(root);
    expect(error.message).toMatch(pattern);
    expect(error.message).toContain(path.join(root, 'normal', 'bad.png'));
    const result = await importFolderDataset(root, { onCorruptImage: 'skip' });
    expect(result.catalog.map((e) => e.file)).toEqual(['normal/a.png']);
    expect(result.skipped).toEqual([{ path: 'normal/bad.png', reason: expect.stringMatching(pattern) as unknown as string }]);
  });

  it('fails on a truncated PNG', async () => {
    const big = await sharp({ create: { width: 200, height: 200, channels: 3, background: { r: 90, g: 20, b: 200 } } })
      .png({ compressionLevel: 0 })
      .toBuffer();
    const root = await dataset({ 'normal/cut.png': big.subarray(0, Math.floor(big.length / 2)) });
    expect((await importError(root)).message).toMatch(/normal[/\\]cut\.png: unreadable image/);
  });

  it('with a cache file, does not decode unchanged files again but notices changed ones', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'normal/b.png': image(1) });
    const cacheFile = path.join(await temporaryFolder(), 'cache.json');
    const target = path.join(root, 'normal', 'a.png');
    // Whole seconds, so setting the same time again reproduces mtimeMs exactly.
    await utimes(target, 1_700_000_000, 1_700_000_000);
    const first = await importFolderDataset(root, { onCorruptImage: 'fail', cacheFile });
    const { size } = await stat(target);
    // Same size and time stamps, different (broken) bytes: the cache trusts them, as make would.
    await writeFile(target, Buffer.alloc(size, 7));
    await utimes(target, 1_700_000_000, 1_700_000_000);
    const cached = await importFolderDataset(root, { onCorruptImage: 'fail', cacheFile });
    expect(cached.catalog.map((e) => e.sha256)).toEqual(first.catalog.map((e) => e.sha256));
    // A real change (new size / time) is decoded again and caught.
    await writeFile(target, Buffer.from('broken'));
    await expect(importFolderDataset(root, { onCorruptImage: 'fail', cacheFile })).rejects.toThrow(/a\.png: unreadable image/);
  });

  it('with a cache file, imports one folder several times at once in one process (a sweep\'s experiments)', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'normal/b.png': image(1), 'covid/c.png': image(2) });
    const cacheFile = path.join(await temporaryFolder(), 'cache.json');
    const imports = await Promise.all(Array.from({ length: 4 }, () => importFolderDataset(root, { onCorruptImage: 'fail', cacheFile })));
    for (const { catalog } of imports) expect(catalog.map((e) => e.file)).toEqual(['covid/c.png', 'normal/a.png', 'normal/b.png']);
    expect((await readdir(path.dirname(cacheFile))).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('reports and drops duplicates by content', async () => {
    const root = await dataset({ 'normal/a.png': image(0), 'normal/copy.png': image(0), 'covid/copy.png': image(0), 'covid/b.png': image(1) });
    const { catalog, duplicates } = await importFolderDataset(root, { onCorruptImage: 'fail' });
    expect(catalog.map((e) => e.file)).toEqual(['covid/b.png', 'covid/copy.png']);
    expect(duplicates).toEqual([{ sha256: expect.any(String) as unknown as string, kept: 'covid/copy.png', dropped: ['normal/a.png', 'normal/copy.png'], conflictingLabels: true }]);
  });
});
