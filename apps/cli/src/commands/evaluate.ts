import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { DATA_B_CLASSES } from '@detl/config';
import type { CatalogEntry, ImportResult } from '@detl/data';
import { CliError } from '../cli-error';
import { configFlagValue } from '../config-options';
import { formatMatrix } from '../report-format';
import { openRuntime, type CliRuntime } from '../runtime';
import {
  describeInput,
  describeScoring,
  ensembleInputs,
  loadChecked,
  parseFold,
  parseModelReference,
  preprocessFile,
  resolveModels,
  scoringOf,
  writeAtomically,
  type LayersModel,
  type ModelReference,
  type ResolvedModel,
  type ResolvedPreprocessing,
} from './predict';

/** Flags of `detl evaluate`. */
export interface EvaluateFlags {
  model: string;
  dataset: string;
  fold?: string;
  outDir?: string;
  onCorrupt?: string;
  json?: boolean;
}

/** Folders of a dataset root that are not classes (lesion masks, hidden folders). */
const NOT_CLASS_FOLDERS = new Set(['masks']);
const BOOTSTRAP_ITERATIONS = 2000;

/** Accuracy and per-class recall of the images of one source. */
interface SourceBreakdown {
  source: string;
  images: number;
  accuracy: number;
  /** Per class present in this source: its images and the share predicted correctly. */
  perClass: Record<string, { images: number; recall: number }>;
}

/**
 * `detl evaluate`: tests a trained run on an external folder-per-class dataset (the `detl run
 * --dataset` layout, optional labels.csv). Every image is preprocessed as the run's sampling did and
 * predicted by the run's fold ensemble (or `--fold k`), scored as the run's folds were (its
 * `evaluation.testTimeFlip`); the accuracy with a bootstrap interval, the
 * confusion matrix, a per-class report and a per-source breakdown (labels.csv `source`) are printed
 * and written as JSON and a confusion heatmap PNG. Images whose bytes are in the run's training
 * manifest are named in a warning: they make the numbers optimistic.
 */
export async function evaluateCommand(flags: EvaluateFlags): Promise<void> {
  const reference = parseModelReference(flags.model);
  const fold = parseFold(flags.fold);
  if (fold !== null && reference.kind === 'prefix') {
    throw new CliError(`--fold ${flags.fold}: applies to an experiment; --model ${flags.model} already names one model`, 2);
  }
  const onCorrupt = flags.onCorrupt === undefined ? undefined : configFlagValue('--on-corrupt', 'dataset.onCorruptImage', flags.onCorrupt);
  if (flags.outDir !== undefined && existsSync(flags.outDir) && !statSync(flags.outDir).isDirectory()) {
    throw new CliError(`--out-dir ${flags.outDir}: is a file, not a folder`, 2);
  }
  const root = path.resolve(flags.dataset);
  checkClassFolders(root, flags.dataset);

  const runtime = await openRuntime({ temporal: false, s3: true });
  try {
    const resolved = await resolveModels(runtime, reference, fold, flags.model);
    const { importFolderDataset, DatasetError } = await import('@detl/data');
    let imported: ImportResult;
    try {
      // The run's own policy for images that do not decode, unless the command line says otherwise.
      imported = await importFolderDataset(root, { onCorruptImage: onCorrupt ?? resolved.experiment?.config.dataset.onCorruptImage ?? 'fail' });
    } catch (error) {
      if (error instanceof DatasetError) throw new CliError(`--dataset ${flags.dataset}: ${error.message}`);
      throw error;
    }
    const images = imported.catalog;
    if (images.length === 0) throw new CliError(`--dataset ${flags.dataset}: no readable image left to evaluate`);
    const leaked = await trainingOverlap(runtime, resolved.preprocessing, images);

    const ml = await import('@detl/ml');
    await ml.initBackend(resolved.experiment?.config.runtime.backend ?? 'auto');
    const loaded: { model: LayersModel; source: ResolvedModel }[] = [];
    try {
      for (const source of resolved.models) loaded.push({ model: await loadChecked(runtime, source, resolved.preprocessing), source });
      const preprocessing: ResolvedPreprocessing = resolved.preprocessing ?? {
        imageSize: loaded[0]?.model.inputs[0]?.shape[1] as number,
        degradeToPixels: null,
        crop: (await import('@detl/data')).CROP_POLICY,
        manifestKey: null,
      };
      const pixels: Uint8Array[] = [];
      for (const entry of images) pixels.push(await preprocessFile(entry.path, preprocessing));
      const scoring = scoringOf(resolved.experiment);
      const perModel = ensembleInputs(loaded, pixels, preprocessing.imageSize, ml, scoring);
      const probabilities = images.map((_, index) =>
        DATA_B_CLASSES.map((__, c) => perModel.reduce((sum, rows) => sum + ((rows[index] as number[])[c] ?? 0), 0) / perModel.length),
      );
      const actual = images.map((entry) => DATA_B_CLASSES.indexOf(entry.label));
      const predicted = probabilities.map((row) => row.indexOf(Math.max(...row)));
      const matrix = ml.confusionMatrix(actual, predicted, DATA_B_CLASSES.length);
      const report = ml.classificationReport(matrix, DATA_B_CLASSES);
      const interval = ml.bootstrapAccuracyInterval(actual, predicted, { seed: resolved.experiment?.seed ?? 42, iterations: BOOTSTRAP_ITERATIONS });
      const perSource = sourceBreakdown(images, actual, predicted);

      const outDir = path.resolve(flags.outDir ?? defaultEvaluationDir(runtime.settings.home, reference, resolved.experiment?.id ?? null, root));
      await mkdir(outDir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
        throw new CliError(`${outDir}: cannot create the output folder (${error.code ?? error.message})`);
      });
      const files = { json: path.join(outDir, 'evaluation.json'), confusionMatrixPng: path.join(outDir, 'confusion-matrix.png') };
      const title = `${path.basename(root)}: accuracy ${(report.accuracy * 100).toFixed(1)}% (n = ${images.length})`;
      await writeAtomically(files.confusionMatrixPng, await ml.renderConfusionMatrixPng(matrix, DATA_B_CLASSES, { title }), 'the confusion matrix');
      const result = {
        model: {
          reference: flags.model,
          experimentId: resolved.experiment?.id ?? null,
          ensemble: loaded.length > 1 ? 'mean of probabilities' : null,
          testTimeFlip: scoring.testTimeFlip,
          models: resolved.models.map((m) => ({ fold: m.fold, prefix: m.prefix })),
        },
        preprocessing,
        dataset: { root, images: images.length, skipped: imported.skipped, duplicates: imported.duplicates.length, warnings: imported.warnings },
        classes: [...DATA_B_CLASSES],
        accuracy: report.accuracy,
        interval,
        confusionMatrix: matrix,
        perClass: Object.fromEntries(report.perClass.map(({ className, ...scores }) => [className, scores])),
        macroF1: report.macroF1,
        perSource,
        leakage: { inTrainingManifest: leaked.length, files: leaked },
        predictions: images.map((entry, index) => ({
          file: entry.path,
          label: entry.label,
          source: entry.source,
          predicted: DATA_B_CLASSES[predicted[index] as number],
          probabilities: Object.fromEntries(DATA_B_CLASSES.map((name, c) => [name, (probabilities[index] as number[])[c] ?? 0])),
        })),
        files,
      };
      await writeAtomically(files.json, `${JSON.stringify(result, null, 2)}\n`, 'the evaluation');
      for (const warning of imported.warnings) console.error(`warning: ${warning}`);
      for (const skipped of imported.skipped) console.error(`warning: ${skipped.path} left out: ${skipped.reason}`);
      if (leaked.length > 0) {
        const shown = leaked.slice(0, 5).join(', ');
        console.error(`warning: ${leaked.length} of ${images.length} images are in the run's training data (identical bytes): ${shown}${leaked.length > 5 ? ', …' : ''}; the numbers below are optimistic`);
      }
      if (flags.json) {
        console.log(JSON.stringify(result, null, 2));
        return;
      }
      printEvaluation(result, `${resolved.description}${describeScoring(scoring)}`, describeInput(preprocessing, runtime));
    } finally {
      for (const { model } of loaded) model.dispose();
    }
  } finally {
    await runtime.close();
  }
}

/** The dataset's class folders must be the run's classes (a subset is fine: it may lack one). */
function checkClassFolders(root: string, given: string): void {
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new CliError(`--dataset ${given}: not a folder`);
  const folders = readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.') && !NOT_CLASS_FOLDERS.has(entry.name))
    .map((entry) => entry.name)
    .sort();
  const foreign = folders.filter((name) => !(DATA_B_CLASSES as readonly string[]).includes(name));
  if (folders.length === 0 || foreign.length > 0) {
    const found = folders.length === 0 ? 'no class folders' : `class folders ${folders.join(', ')}`;
    const problem = foreign.length > 0 ? `; ${foreign.join(', ')} ${foreign.length === 1 ? 'is' : 'are'} not among them` : '';
    throw new CliError(`--dataset ${given}: has ${found}, but the run's classes are ${DATA_B_CLASSES.join(', ')}${problem} (rename or leave out those folders)`);
  }
}

/** Files of the dataset whose bytes are in the run's sampling manifest (training or held-out folds alike). */
async function trainingOverlap(runtime: CliRuntime, preprocessing: ResolvedPreprocessing | null, images: readonly CatalogEntry[]): Promise<string[]> {
  if (!preprocessing?.manifestKey) return [];
  const { loadManifest } = await import('@detl/data');
  const manifest = await loadManifest(runtime.store, preprocessing.manifestKey);
  const hashes = new Set(manifest.items.map((item) => item.sourceSha256));
  return images.filter((entry) => hashes.has(entry.sha256)).map((entry) => entry.path);
}

function sourceBreakdown(images: readonly CatalogEntry[], actual: readonly number[], predicted: readonly number[]): SourceBreakdown[] {
  const sources = [...new Set(images.map((entry) => entry.source))].sort();
  return sources.map((source) => {
    const indices = images.map((entry, index) => (entry.source === source ? index : -1)).filter((index) => index >= 0);
    const correct = (list: number[]) => list.filter((index) => actual[index] === predicted[index]).length;
    const perClass: SourceBreakdown['perClass'] = {};
    DATA_B_CLASSES.forEach((name, c) => {
      const ofClass = indices.filter((index) => actual[index] === c);
      if (ofClass.length > 0) perClass[name] = { images: ofClass.length, recall: correct(ofClass) / ofClass.length };
    });
    return { source, images: indices.length, accuracy: correct(indices) / indices.length, perClass };
  });
}

/** Where results go when `--out-dir` is not given: beside the run's predictions, per dataset folder. */
function defaultEvaluationDir(home: string, reference: ModelReference, experimentId: string | null, root: string): string {
  const run = experimentId ?? (reference.kind === 'prefix' ? reference.prefix.replace(/[^A-Za-z0-9._-]+/g, '-') : 'model');
  return path.join(home, 'evaluations', run, path.basename(root));
}

const percent = (value: number) => `${(value * 100).toFixed(2)}%`;

function printEvaluation(
  result: {
    dataset: { root: string; images: number };
    accuracy: number;
    interval: { lower: number; upper: number; level: number; iterations: number };
    confusionMatrix: number[][];
    classes: string[];
    perClass: Record<string, { precision: number; recall: number; f1: number; support: number }>;
    macroF1: number;
    perSource: SourceBreakdown[];
    files: { json: string; confusionMatrixPng: string };
  },
  description: string,
  input: string,
): void {
  console.log(`model    ${description}`);
  console.log(`input    ${input}`);
  console.log(`dataset  ${result.dataset.root} (${result.dataset.images} images)`);
  console.log('');
  console.log(
    `Accuracy: ${percent(result.accuracy)} (${Math.round(result.interval.level * 100)}% bootstrap interval ${percent(result.interval.lower)}–${percent(result.interval.upper)}, ${result.interval.iterations} resamples)`,
  );
  console.log('');
  console.log('Confusion matrix (rows: actual, columns: predicted)');
  console.log(formatMatrix(result.confusionMatrix, result.classes));
  console.log('');
  console.log(`${'class'.padEnd(14)} ${'precision'.padStart(9)} ${'recall'.padStart(9)} ${'F1'.padStart(9)} ${'n'.padStart(5)}`);
  for (const name of result.classes) {
    const row = result.perClass[name];
    if (row) console.log(`${name.padEnd(14)} ${percent(row.precision).padStart(9)} ${percent(row.recall).padStart(9)} ${percent(row.f1).padStart(9)} ${String(row.support).padStart(5)}`);
  }
  console.log(`macro F1 ${percent(result.macroF1)}`);
  console.log('');
  console.log('Per source (accuracy; recall per class present)');
  const width = Math.max(8, ...result.perSource.map((s) => s.source.length + 1));
  for (const source of result.perSource) {
    const classes = Object.entries(source.perClass)
      .map(([name, cell]) => `${name} ${percent(cell.recall)} of ${cell.images}`)
      .join(', ');
    console.log(`  ${source.source.padEnd(width)} ${percent(source.accuracy).padStart(8)} of ${String(source.images).padStart(4)}  ${classes}`);
  }
  console.log('');
  console.log(`written: ${result.files.json}`);
  console.log(`         ${result.files.confusionMatrixPng}`);
  console.log("\nA research model's output on external data, not a clinical validation.");
}
