import { expectCliErrors, runDetl, type DetlRun } from '../test-support/run-detl';
import { SAMPLED_IMAGE_SIZE, startSampledServices, type SampledServices } from '../test-support/sampled-services';
import { recordTrainedRun } from '../test-support/trained-run';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_B_CLASSES } from '@detl/config';
import { generateSyntheticDataset } from '@detl/data';
import type { ExperimentRecord, TrackingStore } from '@detl/tracking';

// `detl evaluate` end to end on real services: a run recorded in PostgreSQL with fold models and a
// real sampling manifest in MinIO, evaluated on a small synthetic folder-per-class dataset from two
// "hospitals" (labels.csv source column), one image of which is also in the run's training data.

const SIZE = SAMPLED_IMAGE_SIZE;

let services: SampledServices;
let tracking: TrackingStore;
let work: string;
let env: NodeJS.ProcessEnv;
let experiment: ExperimentRecord;
let external: string;
let leakedImage: string;

function run(args: string[]): Promise<DetlRun> {
  return runDetl(args, { env, cwd: work });
}

beforeAll(async () => {
  services = await startSampledServices('evaluate');
  ({ tracking, home: work, env } = services);
  experiment = await recordTrainedRun(tracking, services.store, services.config, services.manifestKey, [SIZE, SIZE]);

  // The external set: 3 images per class, sources alternating between two hospitals, plus one
  // image copied from the run's own (synthetic) training data.
  external = path.join(work, 'external');
  await generateSyntheticDataset({ root: external, seed: 77, imageSize: 64, dataB: { normal: 3, pneumonia: 3, other_disease: 3, covid: 3 }, dataA: { normal: 0, diseased: 0 } });
  const trainingRoot = path.join(work, 'sampling', 'synthetic');
  const generated = path.join(trainingRoot, (await readdir(trainingRoot))[0] as string);
  const trainingCovid = (await readdir(path.join(generated, 'covid'))).find((name) => name.endsWith('.png')) as string;
  leakedImage = path.join(external, 'covid', 'copied-from-training.png');
  await copyFile(path.join(generated, 'covid', trainingCovid), leakedImage);
  const files = (await Promise.all(DATA_B_CLASSES.map(async (name) => (await readdir(path.join(external, name))).filter((f) => f.endsWith('.png')).map((f) => `${name}/${f}`)))).flat().sort();
  const rows = files.map((file, index) => `${file},${file.split('/')[0] as string},p${index},B,${index % 2 === 0 ? 'hospital-a' : 'hospital-b'}`);
  await writeFile(path.join(external, 'labels.csv'), `file,label,patient_id,subset,source\n${rows.join('\n')}\n`);
}, 240_000);

afterAll(async () => {
  await services?.stop();
});

interface EvaluationJson {
  model: { experimentId: string; models: { fold: number | null }[] };
  preprocessing: { imageSize: number; degradeToPixels: number | null };
  dataset: { images: number };
  accuracy: number;
  interval: { lower: number; upper: number; level: number };
  confusionMatrix: number[][];
  perClass: Record<string, { precision: number; recall: number; f1: number; support: number }>;
  perSource: { source: string; images: number; accuracy: number; perClass: Record<string, { images: number; recall: number }> }[];
  leakage: { inTrainingManifest: number; files: string[] };
  predictions: { file: string; label: string; predicted: string; source: string }[];
  files: { json: string; confusionMatrixPng: string };
}

describe('detl evaluate', () => {
  it('reports accuracy with an interval, the confusion matrix, per class and per source, as JSON and PNG, and warns of training images', async () => {
    const outDir = path.join(work, 'report');
    const result = await run(['evaluate', '--model', experiment.id.slice(0, 8), '--dataset', external, '--out-dir', outDir, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as EvaluationJson;
    expect(report.model.experimentId).toBe(experiment.id);
    expect(report.model.models.map((m) => m.fold)).toEqual([0, 1]);
    // Preprocessed as the run was, whatever the folder's own image size.
    expect(report.preprocessing).toMatchObject({ imageSize: SIZE, degradeToPixels: 16 });
    expect(report.dataset.images).toBe(13);
    expect(report.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(13);
    const correct = report.predictions.filter((p) => p.label === p.predicted).length;
    expect(report.accuracy).toBeCloseTo(correct / 13, 10);
    expect(report.interval.lower).toBeLessThanOrEqual(report.accuracy);
    expect(report.interval.upper).toBeGreaterThanOrEqual(report.accuracy);
    expect(report.interval.level).toBe(0.95);
    expect(Object.keys(report.perClass)).toEqual([...DATA_B_CLASSES]);
    expect(report.perClass['covid']?.support).toBe(4);
    expect(report.perSource.map((s) => [s.source, s.images])).toEqual([
      ['hospital-a', 7],
      ['hospital-b', 6],
    ]);
    for (const source of report.perSource) {
      const mine = report.predictions.filter((p) => p.source === source.source);
      expect(source.accuracy).toBeCloseTo(mine.filter((p) => p.label === p.predicted).length / mine.length, 10);
      expect(Object.values(source.perClass).reduce((n, cell) => n + cell.images, 0)).toBe(source.images);
    }
    expect(report.leakage).toEqual({ inTrainingManifest: 1, files: [leakedImage] });
    expect(result.stderr).toContain("warning: 1 of 13 images are in the run's training data (identical bytes)");
    expect(JSON.parse(await readFile(path.join(outDir, 'evaluation.json'), 'utf8'))).toEqual(report);
    expect((await sharp(await readFile(path.join(outDir, 'confusion-matrix.png'))).metadata()).format).toBe('png');
  });

  it('prints the report for people, and writes it under the home by default', async () => {
    const result = await run(['evaluate', '--model', experiment.id, '--fold', '1', '--dataset', external]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Accuracy: \d+\.\d\d% \(95% bootstrap interval \d+\.\d\d%–\d+\.\d\d%, 2000 resamples\)/);
    expect(result.stdout).toContain('Confusion matrix (rows: actual, columns: predicted)');
    expect(result.stdout).toMatch(/^\s+hospital-a\s+\d+\.\d\d% of\s+7 /m);
    const dir = path.join(work, 'home', 'evaluations', experiment.id, 'external');
    expect(result.stdout).toContain(`written: ${path.join(dir, 'evaluation.json')}`);
    expect(JSON.parse(await readFile(path.join(dir, 'evaluation.json'), 'utf8'))).toMatchObject({ model: { models: [{ fold: 1 }] } });
  });

  it('names an image that does not decode, or leaves it out with --on-corrupt skip', async () => {
    const broken = path.join(work, 'broken');
    await mkdir(path.join(broken, 'normal'), { recursive: true });
    await copyFile(path.join(external, 'normal', (await readdir(path.join(external, 'normal'))).find((f) => f.endsWith('.png')) as string), path.join(broken, 'normal', 'fine.png'));
    await writeFile(path.join(broken, 'normal', 'broken.png'), 'not an image');
    const [fail, skip] = await Promise.all([
      run(['evaluate', '--model', experiment.id, '--dataset', broken]),
      run(['evaluate', '--model', experiment.id, '--dataset', broken, '--on-corrupt', 'skip', '--json']),
    ]);
    expect(fail.code).toBe(1);
    expect(fail.stderr).toContain(`--dataset ${broken}: ${path.join(broken, 'normal', 'broken.png')}: unreadable image`);
    expect(skip.code, skip.stderr).toBe(0);
    const report = JSON.parse(skip.stdout) as EvaluationJson & { dataset: { skipped: { path: string }[] } };
    expect(report.dataset.images).toBe(1);
    expect(report.dataset.skipped.map((s) => s.path)).toEqual(['normal/broken.png']);
    expect(skip.stderr).toContain('warning: normal/broken.png left out: ');
  });

  it('names the class folders that are not the run\'s, and bad flags, before connecting to anything', async () => {
    const foreign = path.join(work, 'foreign');
    for (const name of ['normal', 'tuberculosis', 'covid']) await mkdir(path.join(foreign, name), { recursive: true });
    await expectCliErrors([
      [
        ['evaluate', '--model', experiment.id, '--dataset', foreign],
        `--dataset ${foreign}: has class folders covid, normal, tuberculosis, but the run's classes are normal, pneumonia, other_disease, covid; tuberculosis is not among them`,
      ],
      [['evaluate', '--model', experiment.id, '--dataset', path.join(work, 'nowhere')], 'not a folder'],
      [['evaluate', '--model', experiment.id, '--dataset', external, '--on-corrupt', 'ignore'], '--on-corrupt ignore: dataset.onCorruptImage: expected one of fail, skip', 2],
      [['evaluate', '--model', 'models/x', '--fold', '0', '--dataset', external], '--fold 0: applies to an experiment', 2],
      [['evaluate', '--model', experiment.id, '--dataset', external, '--out-dir', path.join(external, 'labels.csv')], 'is a file, not a folder', 2],
    ]);
  });
});
