import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { generateSyntheticDataset, renderImage } from './synthetic';
import { temporaryFolder } from './test-support/fixtures';

const options = { seed: 7, imageSize: 64, dataB: { normal: 6, pneumonia: 6, other_disease: 9, covid: 6 }, dataA: { normal: 5, diseased: 5 } };

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(root, path.join(e.parentPath, e.name))).sort();
}

describe('generateSyntheticDataset', () => {
  it('writes images, masks and labels.csv, byte-identical for the same seed', async () => {
    const a = await temporaryFolder();
    const b = await temporaryFolder();
    const result = await generateSyntheticDataset({ root: a, ...options });
    await generateSyntheticDataset({ root: b, ...options });
    expect(result.imageCount).toBe(37);
    const files = await listFiles(a);
    expect(files).toEqual(await listFiles(b));
    expect(files.filter((f) => f.startsWith('masks/')).length).toBe(37);
    for (const file of files) expect((await readFile(path.join(a, file))).equals(await readFile(path.join(b, file)))).toBe(true);

    const csv = (await readFile(path.join(a, 'labels.csv'), 'utf8')).trim().split('\n');
    expect(csv[0]).toBe('file,label,patient_id,subset,source');
    expect(csv.length - 1).toBe(37);
    const meta = await sharp(path.join(a, 'covid/b-covid-00001.png')).metadata();
    expect([meta.width, meta.height, meta.channels, meta.depth]).toEqual([64, 64, 1, 'uchar']);
    expect(csv.filter((line) => line.includes(',A,')).every((line) => line.startsWith('normal/') || line.startsWith('other_disease/'))).toBe(true);
  });

  it('changes with the seed', async () => {
    const a = await temporaryFolder();
    const b = await temporaryFolder();
    await generateSyntheticDataset({ root: a, ...options });
    await generateSyntheticDataset({ root: b, ...options, seed: 8 });
    const file = 'covid/b-covid-00001.png';
    expect((await readFile(path.join(a, file))).equals(await readFile(path.join(b, file)))).toBe(false);
  });

  it('marks lesions in masks for diseased classes only, and lesions brighten the image there', async () => {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, ...options });
    const lines = (await readFile(path.join(root, 'labels.csv'), 'utf8')).trim().split('\n').slice(1);
    for (const line of lines) {
      const [file, label] = line.split(',') as [string, string];
      const mask = await sharp(path.join(root, 'masks', file)).raw().toBuffer();
      const marked = mask.filter((v) => v === 255).length;
      if (label === 'normal') expect(marked, file).toBe(0);
      else expect(marked, file).toBeGreaterThan(10);
      if (label === 'covid' || label === 'pneumonia') {
        const image = await sharp(path.join(root, file)).raw().toBuffer();
        let inside = 0;
        let outside = 0;
        image.forEach((v, i) => (mask[i] === 255 ? (inside += v) : (outside += v)));
        // Lesions sit in the dark lungs yet are brighter than the image average elsewhere.
        expect(inside / marked, file).toBeGreaterThan(outside / (image.length - marked));
      }
    }
  });

  it('marks the whole enlarged heart of a cardiomegaly image, not only the ring beyond a normal heart', () => {
    // Other_disease is cardiomegaly in about 30% of Data-B images; its heart sits near (0.56, 0.64)
    // give or take the pose jitter, and no other lesion of the class reaches the heart's centre.
    const size = 64;
    const centre = Math.round(0.64 * size) * size + Math.round(0.56 * size);
    const plans = Array.from({ length: 20 }, (_, i) => ({ file: `other_disease/b-x-${i}.png`, label: 'other_disease' as const, patientId: `p${i}`, subset: 'B' as const }));
    const filledHearts = plans
      .map((plan) => renderImage(7, plan, size).mask)
      .filter((mask) => {
        if (mask[centre] !== 255) return false;
        // A filled ellipse covers π/4 of its bounding box; the old ring (and an effusion) far less.
        const marked = [...mask.keys()].filter((i) => mask[i] === 255);
        const xs = marked.map((i) => i % size);
        const ys = marked.map((i) => Math.floor(i / size));
        const box = (Math.max(...xs) - Math.min(...xs) + 1) * (Math.max(...ys) - Math.min(...ys) + 1);
        return marked.length > 150 && marked.length / box > 0.7;
      });
    expect(filledHearts.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses a non-empty folder', async () => {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, ...options });
    await expect(generateSyntheticDataset({ root, ...options })).rejects.toThrow(/must be empty/);
  });
});

describe('synthetic patients', () => {
  it('has follow-up patients yet at least min(images, 10) patients per class', async () => {
    const root = await temporaryFolder();
    await generateSyntheticDataset({ root, seed: 1, imageSize: 16, dataB: { normal: 6, pneumonia: 10, other_disease: 12, covid: 60 }, dataA: { normal: 0, diseased: 0 } });
    const rows = (await readFile(path.join(root, 'labels.csv'), 'utf8')).trim().split('\n').slice(1).map((line) => line.split(','));
    const patients = (label: string): number => new Set(rows.filter((r) => r[1] === label).map((r) => r[2])).size;
    expect(patients('normal')).toBe(6);
    expect(patients('pneumonia')).toBe(10);
    expect(patients('other_disease')).toBeGreaterThanOrEqual(10);
    expect(patients('covid')).toBeGreaterThanOrEqual(10);
    expect(patients('covid')).toBeLessThan(60);
  });
});
