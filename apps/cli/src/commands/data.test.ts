import { serviceEnvironment } from '@detl/config';
import { expectCliErrors, runDetl } from '../test-support/run-detl';
import { resolveRunConfig } from '../experiment-input';
import { loadSweep, withStoredSamplings } from './sweep';
import { ConfigError } from '@detl/config';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSyntheticDataset } from '@detl/data';
import { startTestMinio, type TestMinio } from '@detl/services/testing';
import { createObjectStore, type S3ObjectStore } from '@detl/storage';
import { createTestDatabase, type TestDatabase } from '@detl/tracking/testing';

// `detl data import` and `detl data check` as a user runs them, against real MinIO and PostgreSQL:
// a generated folder dataset in, shards and a manifest out; bad input stops with the flag or file
// named, a non-zero exit, and no manifest in the bucket.


let minio: TestMinio;
let database: TestDatabase;
let store: S3ObjectStore;
let work: string;
let dataset: string;
let env: NodeJS.ProcessEnv;

async function manifestKeys(): Promise<string[]> {
  return (await store.listKeys('manifests/')).filter((key) => /^manifests\/[0-9a-f]{64}\.json$/.test(key));
}

interface ImportJson {
  manifestKey: string;
  counts: { dataB: Record<string, number>; dataA: { train: number; validation: number } };
  summary: { dataB: Record<string, number>[]; sources: Record<string, { A: number; B: number }> };
  shardsWritten: number;
  shardsReused: number;
  warnings: string[];
  sourceCheck: { skipped: string } | { overall: { accuracy: number; chance: number } } | null;
}

beforeAll(async () => {
  [minio, database] = await Promise.all([startTestMinio(), createTestDatabase()]);
  store = createObjectStore(minio.settings);
  await store.ensureBucket();
  work = await mkdtemp(path.join(os.tmpdir(), 'detl-data-'));
  dataset = path.join(work, 'cxr');
  await generateSyntheticDataset({ root: dataset, seed: 5, imageSize: 48, dataB: { normal: 6, pneumonia: 6, other_disease: 6, covid: 6 }, dataA: { normal: 8, diseased: 8 } });
  env = { ...process.env, ...serviceEnvironment({ home: path.join(work, 'home'), databaseUrl: database.url, s3: minio.settings }) };
}, 120_000);

afterAll(async () => {
  await Promise.all([minio?.stop(), database?.drop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

describe('detl data import / check', () => {
  it('rejects bad flags and sources in-process, naming each, before any service is touched', async () => {
    const cases: [string[], string, number?][] = [
      [['data', 'import', '--image-size', '8', 'folder', dataset], '--image-size 8: dataset.imageSize: expected an integer from 16 to 512', 2],
      [['data', 'import', '--folds', '1', 'folder', dataset], '--folds 1: dataset.folds: expected an integer from 2 to 10', 2],
      [['data', 'import', '--seed', '-3', 'folder', dataset], '--seed -3: seed: expected an integer from 0 to 2147483647', 2],
      [['data', 'import', '--scale', '0', 'folder', dataset], '--scale 0: expected a number greater than 0 and at most 1'],
      [['data', 'import', '--strict', 'folder', dataset], '--strict: applies to the paper\'s sizes; give --scale too'],
      [['data', 'import', '--degrade-to', 'x', 'folder', dataset], '--degrade-to x: dataset.degradeToPixels: expected an integer from 8 to 512', 2],
      [['data', 'import', '--on-corrupt', 'ignore', 'folder', dataset], '--on-corrupt ignore: dataset.onCorruptImage: expected one of fail, skip', 2],
      [['data', 'import', '--on-missing', 'maybe', 'folder', dataset], '--on-missing maybe: expected one of fail, skip'],
      [['data', 'import', '--exclude-source', '', 'folder', dataset], '--exclude-source: expected a source name'],
      [['data', 'import', 'folder'], 'source 1 (folder): expected the dataset folder after "folder"'],
      [['data', 'import', 'folder', path.join(dataset, 'labels.csv')], 'labels.csv: not a folder'],
      [['data', 'import', 'folder', dataset, 'nih', '--csv', path.join(dataset, 'labels.csv')], 'source 2 (nih): --images is required'],
      [['data', 'import', 'nih', '--csv', dataset, '--images', dataset], 'source 1 (nih): --csv'],
      [['data', 'import', 'nih', '--csv', path.join(dataset, 'labels.csv'), '--images', dataset, '--lists', path.join(work, 'no-list.txt')], 'no-list.txt: not found'],
      [['data', 'import', 'cohen', '--metadata', path.join(dataset, 'labels.csv'), '--images', dataset, '--lists', 'x'], 'source 1 (cohen): unknown option --lists'],
      [['data', 'import', 'cohen', '--metadata', path.join(dataset, 'labels.csv'), '--images', dataset, '--images', dataset], 'source 1 (cohen): --images given twice'],
      [['data', 'import', '--sede', '4', 'folder', dataset], 'unknown option --sede'],
      [['data', 'import', 'kaggle', dataset], 'unknown source kind "kaggle"'],
      [['data', 'check', '/manifests/x.json'], 'it is absolute'],
    ];
    await expectCliErrors(cases);
    expect(existsSync(path.join(work, 'home'))).toBe(false);
  });

  it('stops on a missing folder or a corrupt image with the path named, a non-zero exit and nothing stored', async () => {
    const corrupt = path.join(work, 'corrupt');
    await generateSyntheticDataset({ root: corrupt, seed: 6, imageSize: 32, dataB: { normal: 5, pneumonia: 5, other_disease: 5, covid: 5 }, dataA: { normal: 2, diseased: 2 } });
    // A listed image whose bytes are not an image: it passes every flag check, the importer finds it.
    const broken = path.join(corrupt, 'covid', (await readdir(path.join(corrupt, 'covid'))).sort()[0] as string);
    await writeFile(broken, 'not a png');
    const [missing, damaged] = await Promise.all([
      runDetl(['data', 'import', 'folder', path.join(work, 'missing')], { env: { ...env, DETL_HOME: path.join(work, 'untouched') } }),
      runDetl(['data', 'import', '--image-size', '16', '--no-source-check', 'folder', corrupt], { env }),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`source 1 (folder): folder ${path.join(work, 'missing')}: not found`);
    // Path checks come before any service starts.
    expect(existsSync(path.join(work, 'untouched'))).toBe(false);
    expect(damaged.code, damaged.stderr).toBe(1);
    expect(damaged.stderr).toContain(broken);
    expect(damaged.stdout).not.toContain('manifest:');
    expect(await manifestKeys()).toEqual([]);
    expect(await store.listKeys('shards/')).toEqual([]);
  });

  it('combines NIH and Cohen sources at scaled paper sizes and reports how well the source alone predicts', async () => {
    const root = path.join(work, 'public');
    // Seeded random pixels: distinct pictures. (Shifted copies of one pattern are near-duplicates,
    // which the sampler merges into one patient group and keeps out of Data-A.)
    const png = (variant: number) => {
      let state = Math.imul(variant, 2654435761) >>> 0;
      const pixels = new Uint8Array(24 * 24);
      for (let i = 0; i < pixels.length; i += 1) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        pixels[i] = state >>> 24;
      }
      return sharp(pixels, { raw: { width: 24, height: 24, channels: 1 } }).png().toBuffer();
    };
    const findings = ['Atelectasis', 'Cardiomegaly', 'Infiltration', 'Effusion', 'Nodule', 'Mass'];
    const rows: string[] = [];
    let variant = 0;
    const addNih = async (name: string, labels: string, patient: number) => {
      rows.push(`${name},${labels},0,${patient},50,M,PA,1,1,1,1,`);
      await writeFile(path.join(root, 'nih', 'images', name), await png((variant += 1)));
    };
    await mkdir(path.join(root, 'nih', 'images'), { recursive: true });
    await mkdir(path.join(root, 'cohen', 'images'), { recursive: true });
    for (let i = 0; i < 30; i += 1) await addNih(`n${i}.png`, 'No Finding', i);
    for (let i = 0; i < 36; i += 1) await addNih(`d${i}.png`, findings[i % 6] as string, 100 + i);
    for (let i = 0; i < 8; i += 1) await addNih(`p${i}.png`, 'Pneumonia', 200 + i);
    await writeFile(path.join(root, 'nih', 'Data_Entry_2017.csv'), `Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,W,H,X,Y,\n${rows.join('\n')}\n`);
    for (let i = 0; i < 8; i += 1) await writeFile(path.join(root, 'cohen', 'images', `c${i}.png`), await png((variant += 1)));
    const cohen = Array.from({ length: 8 }, (_, i) => `${i},COVID-19,PA,X-ray,c${i}.png`);
    await writeFile(path.join(root, 'cohen', 'metadata.csv'), `patientid,finding,view,modality,filename\n${cohen.join('\n')}\n`);

    const result = await runDetl(
      [
        'data', 'import', '--image-size', '16', '--seed', '4', '--scale', '0.02', '--json',
        'nih', `--csv=${path.join(root, 'nih', 'Data_Entry_2017.csv')}`, '--images', path.join(root, 'nih', 'images'),
        'cohen', '--metadata', path.join(root, 'cohen', 'metadata.csv'), '--images', path.join(root, 'cohen', 'images'), '--views', 'PA,AP',
      ],
      { env },
    );
    expect(result.code, result.stderr).toBe(0);
    const output = JSON.parse(result.stdout) as ImportJson;
    // 0.02 × the paper's Data-B: 7 normal, 6 pneumonia, 1 of each of six findings, 6 covid.
    expect(output.counts.dataB).toEqual({ normal: 7, pneumonia: 6, other_disease: 6, covid: 6 });
    expect(Object.keys(output.summary.sources).sort()).toEqual(['cohen-covid-chestxray', 'nih-chestxray14']);
    expect(output.warnings.join('\n')).toMatch(/Data-A normal: asked for \d+ images, \d+ available/);
    const check = output.sourceCheck as { overall: { accuracy: number; chance: number; count: number } };
    expect(check.overall.count).toBe(25);
    expect(check.overall.accuracy).toBeGreaterThanOrEqual(0);
    expect(check.overall.chance).toBeCloseTo(19 / 25, 6);
    expect(await manifestKeys()).toContain(output.manifestKey);
  });

  it('imports a folder dataset, prints counts, warnings and the source check, and reuses the shards on a re-run', async () => {
    const args = ['data', 'import', 'folder', dataset, '--image-size', '32', '--folds', '3', '--seed', '7', '--degrade-to', '16', '--stratify-by-source'];
    const first = await runDetl(args, { env });
    expect(first.code, first.stderr).toBe(0);
    const key = /^manifest: (manifests\/[0-9a-f]{64}\.json)$/m.exec(first.stdout)?.[1];
    expect(key).toBeDefined();
    expect(await manifestKeys()).toContain(key);
    expect(first.stdout).toMatch(/Data-B \(32 px, 3 folds, patient-grouped\)/);
    expect(first.stdout).toMatch(/^ {2}all\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+$/m);
    expect(first.stdout).toContain('Data-A (pretraining)');
    expect(first.stdout).toMatch(/shards: [1-9]\d* written, 0 reused/);
    // One source (the folder): the check says why it has nothing to compare.
    expect(first.stdout).toContain('source predictability');
    expect(first.stdout).toContain('not run: Data-B has 1 source');

    const again = await runDetl([...args, '--json'], { env });
    expect(again.code, again.stderr).toBe(0);
    const output = JSON.parse(again.stdout) as ImportJson;
    expect(output.manifestKey).toBe(key);
    expect(output.shardsWritten).toBe(0);
    expect(output.shardsReused).toBeGreaterThan(0);
    expect(Object.values(output.counts.dataB).reduce((a, b) => a + b, 0)).toBe(output.summary.dataB.flatMap((fold) => Object.values(fold)).reduce((a, b) => a + b, 0));
    expect(output.counts.dataA.train + output.counts.dataA.validation).toBeGreaterThan(0);

    const check = await runDetl(['data', 'check', key as string], { env });
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/intact — \d+ images in \d+ shards/);

    // A damaged shard makes the check fail, naming it.
    const manifest = JSON.parse(new TextDecoder().decode(await store.getObject(key as string))) as { shards: { key: string }[] };
    const shard = manifest.shards[0]?.key as string;
    await store.putObject(shard, new Uint8Array([1, 2, 3]));
    const damaged = await runDetl(['data', 'check', '--json', `s3://${minio.settings.bucket}/${key as string}`], { env });
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toContain(`${shard}: stored bytes differ from the manifest`);
    expect((JSON.parse(damaged.stdout) as { ok: boolean }).ok).toBe(false);

    const missing = await runDetl(['data', 'check', `manifests/${'0'.repeat(64)}.json`], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no such object');
  });

  it('runs on a stored manifest with its image size and folds, and refuses a configuration that contradicts them', async () => {
    const imported = await runDetl(['data', 'import', 'folder', dataset, '--image-size', '32', '--folds', '3', '--seed', '7', '--no-source-check', '--json'], { env });
    expect(imported.code, imported.stderr).toBe(0);
    const key = (JSON.parse(imported.stdout) as ImportJson).manifestKey;
    // No --set for them: the defaults (64 px, 5 folds) give way to the manifest's.
    const config = await resolveRunConfig({ manifest: key }, {}, store);
    expect(config.dataset).toMatchObject({ imageSize: 32, folds: 3, source: { kind: 'manifest', key } });
    expect((await resolveRunConfig({ manifest: key, set: ['dataset.folds=3'] }, {}, store)).dataset.folds).toBe(3);
    const conflict = await resolveRunConfig({ manifest: key, set: ['dataset.imageSize=64'] }, {}, store).catch((error: unknown) => error);
    expect(conflict).toBeInstanceOf(ConfigError);
    expect((conflict as ConfigError).fields).toEqual(['dataset.imageSize']);
    expect((conflict as ConfigError).message).toContain(`dataset.imageSize: 64 conflicts with the stored sampling ${key}, which has 32`);
    await expect(resolveRunConfig({ manifest: `manifests/${'0'.repeat(64)}.json` }, {}, store)).rejects.toThrow(/no such manifest/);
    // A sweep over the same manifest: every experiment gets the manifest's values.
    const sweepFile = path.join(work, 'manifest-sweep.json');
    await writeFile(sweepFile, JSON.stringify({ name: 'on-manifest', base: { dataset: { source: { kind: 'manifest', key } } }, grid: { seed: [1, 2] } }));
    const experiments = await withStoredSamplings(loadSweep(sweepFile), store);
    expect(experiments.map(({ config }) => [config.dataset.imageSize, config.dataset.folds])).toEqual([[32, 3], [32, 3]]);
  });
});
