import { expectCliErrors, runDetl, type DetlRun } from '../test-support/run-detl';
import { SAMPLED_IMAGE_SIZE, startSampledServices, type SampledServices } from '../test-support/sampled-services';
import { recordTrainedRun } from '../test-support/trained-run';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_B_CLASSES } from '@detl/config';
import { generateSyntheticDataset } from '@detl/data';
import { buildModel, saveModelToStore } from '@detl/ml';
import type { S3ObjectStore } from '@detl/storage';
import type { ExperimentRecord, TrackingStore } from '@detl/tracking';

// `detl predict` end to end on real services: MinIO holds a real sampling manifest and fold models
// saved in the tfjs layers format, PostgreSQL holds the experiment and fold rows written through the
// tracking API, and the CLI runs as a user runs it.

const SIZE = SAMPLED_IMAGE_SIZE;

let services: SampledServices;
let store: S3ObjectStore;
let tracking: TrackingStore;
let work: string;
let env: NodeJS.ProcessEnv;
let ensemble: ExperimentRecord;
let mismatched: ExperimentRecord;
let memberEnsembles: ExperimentRecord;
let images: { png: string; jpeg: string; corrupt: string; truncated: string };

/** A succeeded run on the sampling whose fold models are untrained nets of the given sizes (each an ensemble of `members`). */
function recordExperiment(foldSizes: number[], members = 1): Promise<ExperimentRecord> {
  return recordTrainedRun(tracking, store, services.config, services.manifestKey, foldSizes, members);
}

async function run(args: string[], cwd = work): Promise<DetlRun> {
  return runDetl(args, { env, cwd });
}

beforeAll(async () => {
  // A real sampling (32 px, degraded to 16 px) so that predict must read size and degrade from it.
  services = await startSampledServices('predict');
  ({ store, tracking, home: work, env } = services);
  ensemble = await recordExperiment([SIZE, SIZE]);
  // Models outside any run record: a 4-class one at 24 px and a 2-class (pretraining-like) one.
  for (const [prefix, numClasses] of [['models/standalone', 4], ['models/two-class', 2]] as const) {
    const model = buildModel({ architecture: 'small-vgg', widthMultiplier: 0.25, imageSize: 24, channels: 1, numClasses, seed: 5 });
    await saveModelToStore(model, store, prefix);
    model.dispose();
  }
  mismatched = await recordExperiment([SIZE / 2]);
  memberEnsembles = await recordExperiment([SIZE, SIZE], 3);

  const fresh = path.join(work, 'fresh');
  await generateSyntheticDataset({ root: fresh, seed: 99, imageSize: 96, dataB: { normal: 1, pneumonia: 0, other_disease: 0, covid: 1 }, dataA: { normal: 0, diseased: 0 } });
  const covid = (await readdir(path.join(fresh, 'covid'))).find((name) => name.endsWith('.png')) as string;
  const normal = (await readdir(path.join(fresh, 'normal'))).find((name) => name.endsWith('.png')) as string;
  const inputs = path.join(work, 'inputs');
  await mkdir(inputs);
  images = {
    png: path.join(inputs, 'scan-covid.png'),
    jpeg: path.join(inputs, 'scan-normal.jpg'),
    corrupt: path.join(inputs, 'corrupt.png'),
    truncated: path.join(inputs, 'truncated.png'),
  };
  await copyFile(path.join(fresh, 'covid', covid), images.png);
  await sharp(await readFile(path.join(fresh, 'normal', normal))).jpeg().toFile(images.jpeg);
  await writeFile(images.corrupt, 'this is not an image');
  const bytes = await readFile(images.png);
  await writeFile(images.truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
}, 240_000);

afterAll(async () => {
  await services?.stop();
});

function expectDistribution(probabilities: Record<string, number>): void {
  expect(Object.keys(probabilities)).toEqual([...DATA_B_CLASSES]);
  for (const p of Object.values(probabilities)) expect(p).toBeGreaterThanOrEqual(0);
  expect(Object.values(probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
}

async function expectPng(file: string): Promise<void> {
  const metadata = await sharp(await readFile(file)).metadata();
  expect(metadata.format).toBe('png');
  expect(metadata.width).toBeGreaterThanOrEqual(256);
}

interface PredictJson {
  model: { experimentId: string | null; ensemble: string | null; models: { fold: number | null; prefix: string }[] };
  preprocessing: { imageSize: number; degradeToPixels: number | null; crop: string; manifestKey: string | null };
  predictions: { image: string; probabilities: Record<string, number>; predicted: string; overlay: string | null; perModel: { probabilities: Record<string, number> }[] }[];
  overlayDir: string | null;
}

describe('detl predict', () => {
  it('screens a PNG and a JPEG with the ensemble of every fold model, preprocessed as the run was', async () => {
    const cwd = path.join(work, 'ensemble');
    await mkdir(cwd);
    const result = await run(['predict', '--model', ensemble.workflowId, '--json', images.png, images.jpeg], cwd);
    expect(result.stderr).not.toMatch(/detl: /);
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout) as PredictJson;
    expect(output.model.experimentId).toBe(ensemble.id);
    expect(output.model.models.map((m) => m.fold)).toEqual([0, 1]);
    expect(output.preprocessing).toMatchObject({ imageSize: SIZE, degradeToPixels: 16, crop: 'centre-crop-to-square' });
    expect(output.predictions.map((p) => path.basename(p.overlay ?? ''))).toEqual(['scan-covid.gradcam.png', 'scan-normal.gradcam.png']);
    for (const prediction of output.predictions) {
      expectDistribution(prediction.probabilities);
      // The ensemble is the mean of the fold models' probabilities.
      for (const name of DATA_B_CLASSES) {
        const mean = prediction.perModel.reduce((sum, m) => sum + (m.probabilities[name] ?? 0), 0) / prediction.perModel.length;
        expect(prediction.probabilities[name]).toBeCloseTo(mean, 6);
      }
      const best = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1])[0]?.[0];
      expect(prediction.predicted).toBe(best);
      // Overlays go to the run's folder under the home, not into the current folder.
      expect(path.dirname(prediction.overlay ?? '')).toBe(path.join(work, 'home', 'predictions', ensemble.id));
      await expectPng(prediction.overlay ?? '');
    }
    expect(output.overlayDir).toBe(path.join(work, 'home', 'predictions', ensemble.id));
    expect(await readdir(cwd)).toEqual([]);
  });

  it('screens with fold models that are ensembles of three networks (model.members), with a Grad-CAM overlay over all members', async () => {
    const result = await run(['predict', '--model', memberEnsembles.workflowId, '--json', images.png]);
    expect(result.stderr).not.toMatch(/detl: /);
    expect(result.code).toBe(0);
    const [prediction] = (JSON.parse(result.stdout) as PredictJson).predictions;
    expect(prediction?.perModel).toHaveLength(2);
    expectDistribution(prediction?.probabilities ?? {});
    await expectPng(prediction?.overlay ?? '');
  });

  it('screens a folder without overlays and writes one CSV row per image', async () => {
    const folder = path.join(work, 'screening');
    await mkdir(path.join(folder, 'ward-2'), { recursive: true });
    await copyFile(images.png, path.join(folder, 'a.png'));
    await copyFile(images.jpeg, path.join(folder, 'ward-2', 'b.jpg'));
    await writeFile(path.join(folder, 'notes.txt'), 'not an image');
    const csv = path.join(work, 'screening.csv');
    const result = await run(['predict', '--model', ensemble.id, '--no-gradcam', '--output', csv, folder, images.png]);
    expect(result.stderr).not.toMatch(/detl: /);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`predictions: ${csv} (one row per image)`);
    expect(result.stdout).not.toContain('Grad-CAM');
    // A folder's worth of images: one line each, then the count per predicted class.
    expect(result.stdout).toMatch(/^predicted\s+normal\s+pneumonia\s+other_disease\s+covid {2}image$/m);
    expect(result.stdout).toContain(`  ${path.join(folder, 'ward-2', 'b.jpg')}\n`);
    expect(result.stdout).toMatch(/^3 images predicted: /m);
    const [header, ...rows] = (await readFile(csv, 'utf8')).trim().split('\n');
    expect(header).toBe('file,predicted,confidence,p_normal,p_pneumonia,p_other_disease,p_covid,model,folds,overlay');
    expect(rows.map((row) => row.split(',')[0])).toEqual([path.join(folder, 'a.png'), path.join(folder, 'ward-2', 'b.jpg'), images.png]);
    for (const row of rows) {
      const cells = row.split(',');
      const probabilities = cells.slice(3, 7).map(Number);
      expect(probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      expect(cells[1]).toBe(DATA_B_CLASSES[probabilities.indexOf(Math.max(...probabilities))]);
      expect(cells.slice(7)).toEqual([ensemble.id, '0 1', '']);
    }
    expect(existsSync(path.join(work, 'home', 'predictions', ensemble.id, 'screening'))).toBe(false);
  });

  it('writes overlays of a folder into --out-dir, mirroring its sub-folders, and the rows as JSON', async () => {
    const folder = path.join(work, 'to-explain');
    await mkdir(path.join(folder, 'sub'), { recursive: true });
    await copyFile(images.png, path.join(folder, 'sub', 'c.png'));
    const outDir = path.join(work, 'explained');
    const json = path.join(work, 'explained.json');
    const result = await run(['predict', '--model', ensemble.id, '--fold', '0', '--out-dir', outDir, '--output', json, folder]);
    expect(result.code, result.stderr).toBe(0);
    const overlay = path.join(outDir, 'to-explain', 'sub', 'c.gradcam.png');
    expect(result.stdout).toContain(`Grad-CAM overlays: ${outDir} (1 PNG)`);
    await expectPng(overlay);
    const rows = JSON.parse(await readFile(json, 'utf8')) as { file: string; predicted: string; probabilities: Record<string, number>; model: string; folds: string; overlay: string }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ file: path.join(folder, 'sub', 'c.png'), model: ensemble.id, folds: '0', overlay });
    expectDistribution(rows[0]?.probabilities ?? {});
  });

  it('prints the probabilities of one fold model and writes the overlay where --out says', async () => {
    const out = path.join(work, 'fold-one.png');
    // A short id, as git takes one: the first 8 characters of the run id.
    const result = await run(['predict', '--model', ensemble.id.slice(0, 8), '--fold', '1', '--out', out, images.png]);
    expect(result.code).toBe(0);
    const probabilities = DATA_B_CLASSES.map((name) => Number(new RegExp(`^  ${name}\\s+([0-9.]+)`, 'm').exec(result.stdout)?.[1]));
    for (const p of probabilities) expect(Number.isFinite(p)).toBe(true);
    // Four decimals each: the printed values sum to 1 within rounding.
    expect(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1)).toBeLessThanOrEqual(2e-4);
    expect(result.stdout).toContain('fold 1 model');
    expect(result.stdout).toMatch(/predicted\s+(normal|pneumonia|other_disease|covid) \(/);
    expect(result.stdout).toContain('degraded to 16 px');
    await expectPng(out);
  });

  it('takes a model prefix in the bucket and still preprocesses as that model\'s run did', async () => {
    const out = path.join(work, 'prefix.png');
    const result = await run(['predict', '--model', `s3://${store.bucket}/experiments/${ensemble.id}/folds/0/final/`, '--out', out, '--json', images.jpeg]);
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout) as PredictJson;
    expect(output.model.models).toEqual([{ fold: null, prefix: `experiments/${ensemble.id}/folds/0/final` }]);
    expect(output.preprocessing.degradeToPixels).toBe(16);
    expectDistribution(output.predictions[0]?.probabilities ?? {});
    await expectPng(out);
  });

  it('takes a model outside any run at its own input size, and refuses one without the four classes', async () => {
    const [standalone, twoClass] = await Promise.all([
      run(['predict', '--model', 'models/standalone', '--out', path.join(work, 'standalone.png'), '--json', images.png]),
      run(['predict', '--model', 'models/two-class', images.png]),
    ]);
    expect(standalone.code, standalone.stderr).toBe(0);
    const output = JSON.parse(standalone.stdout) as PredictJson;
    expect(output.preprocessing).toEqual({ imageSize: 24, degradeToPixels: null, crop: 'centre-crop-to-square', manifestKey: null });
    expectDistribution(output.predictions[0]?.probabilities ?? {});
    await expectPng(path.join(work, 'standalone.png'));
    expect(twoClass.code).toBe(1);
    expect(twoClass.stderr).toContain('models/two-class has 2 outputs, not the 4 classes');
  });

  it('names an unknown run, a prefix without a model, and a fold without one', async () => {
    const unknownId = randomUUID();
    const [unknown, prefix, fold] = await Promise.all([
      run(['predict', '--model', unknownId, images.png]),
      run(['predict', '--model', 'experiments/nothing/here', images.png]),
      run(['predict', '--model', ensemble.id, '--fold', '4', images.png]),
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`no run with id, id prefix or workflow id "${unknownId}"`);
    expect(prefix.code).toBe(1);
    expect(prefix.stderr).toContain(`no model at s3://${store.bucket}/experiments/nothing/here/model.json`);
    expect(fold.code).toBe(1);
    expect(fold.stderr).toContain('--fold 4: experiment');
    expect(fold.stderr).toContain('folds with a model: 0, 1');
  });

  it('names a corrupt or truncated image and writes no overlay', async () => {
    const cwd = path.join(work, 'corrupt');
    await mkdir(cwd);
    const [corrupt, truncated] = await Promise.all([
      run(['predict', '--model', ensemble.id, images.png, images.corrupt], cwd),
      run(['predict', '--model', ensemble.id, images.truncated], cwd),
    ]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toContain(`${images.corrupt}: not a readable PNG or JPEG image`);
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toContain(`${images.truncated}: not a readable PNG or JPEG image`);
    expect(await readdir(cwd)).toEqual([]);
  });

  it('rejects a model of another input size than its run, naming both sizes', async () => {
    const cwd = path.join(work, 'mismatch');
    await mkdir(cwd);
    const result = await run(['predict', '--model', mismatched.id, images.png], cwd);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`experiments/${mismatched.id}/folds/0/final takes 16x16 px images, but its experiment's images are 32x32 px`);
    expect(existsSync(path.join(cwd, 'scan-covid.gradcam.png'))).toBe(false);
  });

  it('rejects bad flags in-process, naming each, before connecting to anything', async () => {
    await mkdir(path.join(work, 'empty-folder'), { recursive: true });
    const cases: [string[], string, number?][] = [
      [['predict', '--model', ensemble.id, path.join(work, 'missing.png')], `${path.join(work, 'missing.png')}: file not found`],
      [['predict', '--model', ensemble.id, path.join(work, 'empty-folder')], `${path.join(work, 'empty-folder')}: folder holds no PNG or JPEG image`],
      [['predict', '--model', ensemble.id, '--out', path.join(work, 'o.png'), '--out-dir', work, images.png], '--out and --out-dir both say where the overlay goes', 2],
      [['predict', '--model', ensemble.id, '--no-gradcam', '--out-dir', work, images.png], '--no-gradcam writes none', 2],
      [['predict', '--model', ensemble.id, '--no-gradcam', '--out', path.join(work, 'o.png'), images.png], '--no-gradcam writes none', 2],
      [['predict', '--model', ensemble.id, '--out-dir', images.png, images.png], 'is a file, not a folder', 2],
      [['predict', '--model', ensemble.id, '--output', path.join(work, 'rows.xlsx'), images.png], '--output', 2],
      [['predict', '--model', ensemble.id, '--output', path.join(work, 'nowhere', 'rows.csv'), images.png], 'does not exist', 2],
      [['predict', '--model', ensemble.id, '--output', work, images.png], 'expected a .csv or .json file', 2],
      [['predict', '--model', ' ', images.png], '--model: expected an experiment id'],
      [['predict', '--model', 'experiments//final', images.png], 'empty segment'],
      [['predict', '--model', ensemble.id, '--fold', 'two', images.png], '--fold two: expected a fold index'],
      [['predict', '--model', ensemble.id, '--out', path.join(work, 'o.jpg'), images.png], '.jpg: the overlay is a PNG'],
      [['predict', '--model', ensemble.id, '--out', path.join(work, 'nowhere', 'o.png'), images.png], `folder ${path.join(work, 'nowhere')} does not exist`],
      [['predict', '--model', ensemble.id, '--out', path.join(work, 'o.png'), images.png, images.jpeg], 'names one file, but 2 images were given'],
      [['predict', '--model', ensemble.id, '--out', images.png, images.png], 'would overwrite the input image'],
      [['predict', '--model', 'experiments/a/folds/0/final', '--fold', '0', images.png], '--fold 0: applies to an experiment'],
    ];
    await expectCliErrors(cases);
  });
});
