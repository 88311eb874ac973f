import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DATA_B_CLASSES, parseExperimentConfig, type GradCamMethod } from '@detl/config';
import type { DatasetManifest, PreprocessOptions } from '@detl/data';
import { InvalidObjectKeyError, modelJsonKey, normalizeModelPrefix, parseExperimentKey, validateObjectKey } from '@detl/storage';
import type { ExperimentDetail } from '@detl/tracking';
import { CliError } from '../cli-error';
import { findRun } from '../run-reference';
import { openRuntime, type CliRuntime } from '../runtime';

// @detl/ml (tfjs) and @detl/data (sharp) are imported when predict runs, so that other commands do
// not pay for loading them.
const loadData = () => import('@detl/data');
/** The lazily imported ml library, and the model type it loads. */
export type MlModule = typeof import('@detl/ml');
export type LayersModel = Awaited<ReturnType<MlModule['loadModelFromStore']>>;

/** Flags of `detl predict`. */
export interface PredictFlags {
  model: string;
  fold?: string;
  out?: string;
  outDir?: string;
  /** False with `--no-gradcam`. */
  gradcam?: boolean;
  output?: string;
  json?: boolean;
}

/** One image to screen: where it is, and the overlay name it gets (its path below a folder argument). */
export interface InputImage {
  file: string;
  /** Relative overlay path without extension: the stem, or `<sub-folder>/<stem>` inside a folder argument. */
  name: string;
}

/** File name endings `detl predict` accepts (what the preprocessing decodes). */
const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'];

/** Which model the user named: a run (id or workflow id) or an object-store prefix. */
export type ModelReference = { kind: 'run'; ref: string } | { kind: 'prefix'; prefix: string; bucket: string | null };

/** One model of the prediction, with where it came from. */
export interface ResolvedModel {
  /** Fold index for an experiment's fold model; null for a bare prefix. */
  fold: number | null;
  prefix: string;
}

/** How images become network input, and where that was read from. */
export interface ResolvedPreprocessing extends PreprocessOptions {
  crop: string;
  /** The manifest the options come from; null when only the model's input size was known. */
  manifestKey: string | null;
}

/** How the run's models score an image: its config's `evaluation` section (a bare model prefix: plain). */
export interface Scoring {
  /** Each image's softmax averaged with its left-right mirror's (`evaluation.testTimeFlip`). */
  testTimeFlip: boolean;
}

/** The scoring of `experiment`'s own evaluations, so that predict and evaluate score as its folds were scored. */
export function scoringOf(experiment: ExperimentDetail | null): Scoring {
  return { testTimeFlip: experiment?.config.evaluation.testTimeFlip ?? false };
}

/**
 * How `experiment`'s maps are made (`gradCam.method`), so that predict's overlays look like the run's
 * gallery; a bare model prefix gets the configuration default (`grad-cam++`).
 */
export function gradCamMethodOf(experiment: ExperimentDetail | null): GradCamMethod {
  return experiment?.config.gradCam.method ?? parseExperimentConfig({}).gradCam.method;
}

/** One explainer per model, each making `method` maps (the caller disposes them). */
export function overlayExplainers(ml: MlModule, models: readonly { model: LayersModel }[], method: GradCamMethod): ReturnType<MlModule['createGradCamExplainer']>[] {
  return models.map(({ model }) => ml.createGradCamExplainer(model, { method }));
}

/** The model line's words for a scoring: nothing for plain scoring. */
export function describeScoring(scoring: Scoring): string {
  return scoring.testTimeFlip ? ', test-time flip averaged' : '';
}

/** Everything `detl predict --json` prints about one image. */
interface ImagePrediction {
  image: string;
  probabilities: Record<string, number>;
  predicted: string;
  /** The predicted class's probability. */
  confidence: number;
  /** The Grad-CAM overlay PNG; null with `--no-gradcam`. */
  overlay: string | null;
  /** Each model's own probabilities (one entry for a single model). */
  perModel: { fold: number | null; prefix: string; probabilities: Record<string, number> }[];
}

/**
 * `detl predict`: screens new chest X-rays with a trained model. `--model` names an experiment (id,
 * unique id prefix or workflow id: every fold model as an ensemble that averages probabilities, or
 * `--fold k`) or an object-store model prefix. Images (files, or folders of PNG / JPEG files) are
 * preprocessed exactly as the experiment's sampling did (the manifest's size, crop and degrade
 * options) and scored as its folds were (`evaluation.testTimeFlip`: each image's softmax averaged
 * with its mirror's); class probabilities and the predicted class are printed, a Grad-CAM overlay PNG
 * (maps made as the run's gallery's, `gradCam.method`) is written per image under `<DETL_HOME>/predictions/<run>/` (or `--out-dir`, `--out`; none with
 * `--no-gradcam`), and `--output` writes one CSV or JSON row per image.
 */
export async function predictCommand(images: string[], flags: PredictFlags): Promise<void> {
  const reference = parseModelReference(flags.model);
  const fold = parseFold(flags.fold);
  if (fold !== null && reference.kind === 'prefix') {
    throw new CliError(`--fold ${flags.fold}: applies to an experiment; --model ${flags.model} already names one model`);
  }
  const gradcam = flags.gradcam !== false;
  checkOutputFlags(flags, gradcam);
  const inputs = collectImages(images);
  const output = flags.output === undefined ? null : predictionTablePath(flags.output, inputs);
  const overlays = gradcam ? planOverlays(inputs, flags.out) : null;

  const runtime = await openRuntime({ temporal: false, s3: true });
  try {
    const resolved = await resolveModels(runtime, reference, fold, flags.model);
    const { models, experiment, description } = resolved;
    // Every image is decoded before any model loads, so a bad file stops the command before it writes anything.
    let pixels: Uint8Array[] = [];
    for (const { file } of inputs) pixels.push(await preprocessFile(file, resolved.preprocessing));

    const ml = await import('@detl/ml');
    await ml.initBackend(experiment?.config.runtime.backend ?? 'auto');
    const loaded: { model: LayersModel; source: ResolvedModel }[] = [];
    try {
      for (const source of models) loaded.push({ model: await loadChecked(runtime, source, resolved.preprocessing), source });
      let preprocessing = resolved.preprocessing;
      if (!preprocessing) {
        // Only the model tells the size here: decode again at its input size, without degrading.
        const size = loaded[0]?.model.inputs[0]?.shape[1] as number;
        preprocessing = { imageSize: size, degradeToPixels: null, crop: (await loadData()).CROP_POLICY, manifestKey: null };
        pixels = [];
        for (const { file } of inputs) pixels.push(await preprocessFile(file, preprocessing));
      }
      let overlayDir: string | null = null;
      let overlayFiles: string[] | null = null;
      if (overlays) {
        overlayDir = overlays.single ? path.dirname(overlays.single) : path.resolve(flags.outDir ?? defaultOverlayDir(runtime.settings.home, reference, experiment));
        overlayFiles = overlays.single ? [overlays.single] : overlays.names.map((name) => path.join(overlayDir as string, `${name}.gradcam.png`));
        for (const dir of new Set(overlayFiles.map((file) => path.dirname(file)))) {
          await mkdir(dir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
            throw new CliError(`${dir}: cannot create the overlay folder (${error.code ?? error.message})`);
          });
        }
        const overwritten = overlayFiles.find((file) => inputs.some((input) => input.file === file));
        if (overwritten) throw new CliError(`${overwritten}: the overlay would overwrite an input image; choose another --out-dir`, 2);
      }
      const scoring = scoringOf(experiment);
      const gradCamMethod = gradCamMethodOf(experiment);
      const predictions = await predictAll(ml, loaded, inputs, pixels, overlayFiles, preprocessing.imageSize, scoring, gradCamMethod);
      const modelSummary = {
        reference: flags.model,
        experimentId: experiment?.id ?? null,
        ensemble: loaded.length > 1 ? 'mean of probabilities' : null,
        testTimeFlip: scoring.testTimeFlip,
        gradCamMethod: overlayFiles ? gradCamMethod : null,
        models: models.map((m) => ({ fold: m.fold, prefix: m.prefix })),
      };
      if (output) await writePredictionTable(output, predictions, modelSummary);
      if (flags.json) {
        console.log(JSON.stringify({ model: modelSummary, preprocessing, predictions, overlayDir, output }, null, 2));
        return;
      }
      printPredictions(`${description}${describeScoring(scoring)}`, preprocessing, runtime, predictions, loaded.length);
      if (overlayDir !== null) console.log(`\nGrad-CAM overlays: ${overlayDir} (${predictions.length} PNG${predictions.length === 1 ? '' : 's'})`);
      if (output) console.log(`${overlayDir === null ? '\n' : ''}predictions: ${output} (one row per image)`);
      console.log("\nA research model's output, not a diagnosis.");
    } finally {
      for (const { model } of loaded) model.dispose();
    }
  } finally {
    await runtime.close();
  }
}

/** Contradictory or malformed output flags: a usage error (exit 2), before anything is read. */
function checkOutputFlags(flags: PredictFlags, gradcam: boolean): void {
  if (flags.out !== undefined && flags.outDir !== undefined) throw new CliError(`--out and --out-dir both say where the overlay goes; give one`, 2);
  if (!gradcam && flags.out !== undefined) throw new CliError(`--out ${flags.out}: names the Grad-CAM overlay, but --no-gradcam writes none`, 2);
  if (!gradcam && flags.outDir !== undefined) throw new CliError(`--out-dir ${flags.outDir}: is where Grad-CAM overlays go, but --no-gradcam writes none`, 2);
  if (flags.outDir !== undefined) {
    if (flags.outDir.trim() === '') throw new CliError('--out-dir: expected a folder', 2);
    const dir = path.resolve(flags.outDir);
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new CliError(`--out-dir ${flags.outDir}: is a file, not a folder`, 2);
  }
}

/** The overlay folder when none is given: the run's own, under the home, never the current folder. */
function defaultOverlayDir(home: string, reference: ModelReference, experiment: ExperimentDetail | null): string {
  const run = experiment?.id ?? (reference.kind === 'prefix' ? reference.prefix.replace(/[^A-Za-z0-9._-]+/g, '-') : 'model');
  return path.join(home, 'predictions', run);
}

/** `--model`: a run reference, or an S3 model prefix (`experiments/…/final`, `s3://bucket/…`). */
export function parseModelReference(value: string): ModelReference {
  const text = value.trim();
  if (text === '') throw new CliError('--model: expected an experiment id, a workflow id or an S3 model prefix');
  const uri = /^s3:\/\/([^/]+)\/(.+)$/.exec(text);
  if (!uri && text.startsWith('s3://')) throw new CliError(`--model ${value}: expected s3://<bucket>/<model prefix>`);
  if (!uri && !text.includes('/')) return { kind: 'run', ref: text };
  // A model prefix: `experiments/<id>/folds/<k>/final`, with or without a trailing `/` or `/model.json`.
  const prefix = normalizeModelPrefix(uri ? (uri[2] as string) : text);
  try {
    validateObjectKey(prefix);
  } catch (error) {
    if (error instanceof InvalidObjectKeyError) throw new CliError(`--model ${value}: ${error.message}`);
    throw error;
  }
  return { kind: 'prefix', prefix, bucket: uri ? (uri[1] as string) : null };
}

/** `--fold k`, or null when absent. */
export function parseFold(value: string | undefined): number | null {
  if (value === undefined) return null;
  const fold = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(fold) || fold > 99) throw new CliError(`--fold ${value}: expected a fold index, an integer from 0`);
  return fold;
}

/**
 * The images the arguments name: files as given, folders as every PNG / JPEG below them (sorted,
 * hidden files left out), each once.
 */
export function collectImages(images: string[]): InputImage[] {
  if (images.length === 0) throw new CliError('no image given: detl predict --model <run> <image.png|jpg|folder>…');
  const found: InputImage[] = [];
  const seen = new Set<string>();
  const add = (file: string, name: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    found.push({ file, name });
  };
  for (const image of images) {
    const file = path.resolve(image);
    if (!existsSync(file)) throw new CliError(`${image}: file not found`);
    const info = statSync(file);
    if (info.isDirectory()) {
      const inside = imagesInFolder(file);
      if (inside.length === 0) throw new CliError(`${image}: folder holds no PNG or JPEG image (${IMAGE_EXTENSIONS.join(', ')})`);
      for (const relative of inside) add(path.join(file, relative), path.join(path.basename(file), relative.replace(/\.[^.]+$/, '')));
      continue;
    }
    if (!info.isFile()) throw new CliError(`${image}: not a file or folder`);
    if (!IMAGE_EXTENSIONS.includes(path.extname(file).toLowerCase())) throw new CliError(`${image}: expected a PNG or JPEG file (${IMAGE_EXTENSIONS.join(', ')}) or a folder of them`);
    add(file, path.parse(file).name);
  }
  return found;
}

function imagesInFolder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && IMAGE_EXTENSIONS.includes(path.extname(entry.name).toLowerCase()))
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)))
    .filter((relative) => !relative.split(path.sep).some((part) => part.startsWith('.')))
    .sort();
}

/** Overlay names (relative to the overlay folder) per image, or the one `--out` file; checked for clashes. */
function planOverlays(inputs: InputImage[], out: string | undefined): { single: string | null; names: string[] } {
  if (out !== undefined) {
    if (inputs.length !== 1) throw new CliError(`--out ${out}: names one file, but ${inputs.length} images were given; use --out-dir for several`, 2);
    const file = path.resolve(out);
    if (path.extname(file).toLowerCase() !== '.png') throw new CliError(`--out ${out}: the overlay is a PNG; name a .png file`, 2);
    const dir = path.dirname(file);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CliError(`--out ${out}: folder ${dir} does not exist`, 2);
    if (existsSync(file) && statSync(file).isDirectory()) throw new CliError(`--out ${out}: is a folder; name a .png file`, 2);
    if (file === inputs[0]?.file) throw new CliError(`--out ${out}: would overwrite the input image`, 2);
    return { single: file, names: [] };
  }
  const seen = new Map<string, string>();
  for (const { file, name } of inputs) {
    const earlier = seen.get(name);
    if (earlier !== undefined) throw new CliError(`${earlier} and ${file} would both write ${name}.gradcam.png; predict them in separate commands or rename one`);
    seen.set(name, file);
  }
  return { single: null, names: inputs.map((input) => input.name) };
}

/** `--output`: a .csv or .json file in an existing folder, not one of the images. */
function predictionTablePath(output: string, inputs: InputImage[]): string {
  const file = path.resolve(output);
  const format = path.extname(file).toLowerCase();
  if (format !== '.csv' && format !== '.json') throw new CliError(`--output ${output}: expected a .csv or .json file`, 2);
  const dir = path.dirname(file);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CliError(`--output ${output}: folder ${dir} does not exist`, 2);
  if (existsSync(file) && statSync(file).isDirectory()) throw new CliError(`--output ${output}: is a folder; name a .csv or .json file`, 2);
  if (inputs.some((input) => input.file === file)) throw new CliError(`--output ${output}: would overwrite an input image`, 2);
  return file;
}

/** One row per image: what a screening of a folder is read back from (a spreadsheet, a script). */
async function writePredictionTable(
  file: string,
  predictions: ImagePrediction[],
  model: { reference: string; experimentId: string | null; models: { fold: number | null; prefix: string }[] },
): Promise<void> {
  const modelName = model.experimentId ?? model.models[0]?.prefix ?? model.reference;
  const folds = model.models.map((m) => m.fold).filter((f) => f !== null).join(' ');
  const rows = predictions.map((p) => ({ file: p.image, predicted: p.predicted, confidence: p.confidence, probabilities: p.probabilities, model: modelName, folds, overlay: p.overlay }));
  let text: string;
  if (path.extname(file).toLowerCase() === '.json') text = `${JSON.stringify(rows, null, 2)}\n`;
  else {
    const header = ['file', 'predicted', 'confidence', ...DATA_B_CLASSES.map((name) => `p_${name}`), 'model', 'folds', 'overlay'];
    const lines = rows.map((row) =>
      [row.file, row.predicted, row.confidence.toFixed(6), ...DATA_B_CLASSES.map((name) => (row.probabilities[name] ?? 0).toFixed(6)), row.model, row.folds, row.overlay ?? ''].map(csvField).join(','),
    );
    text = `${[header.join(','), ...lines].join('\n')}\n`;
  }
  await writeAtomically(file, text, 'the predictions');
}

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Written beside the target and renamed, so an interrupted run never leaves a truncated file. */
export async function writeAtomically(file: string, data: string | Uint8Array, what: string): Promise<void> {
  const partial = `${file}.partial-${process.pid}`;
  try {
    await writeFile(partial, data);
    await rename(partial, file);
  } catch (error) {
    await rm(partial, { force: true });
    throw new CliError(`${file}: cannot write ${what} (${(error as Error).message})`);
  }
}

/**
 * The models `--model` names (a run's fold models, one fold's, or a prefix), how their images were
 * preprocessed (null when only the model's input size can tell) and a one-line description.
 */
export async function resolveModels(
  runtime: CliRuntime,
  reference: ModelReference,
  fold: number | null,
  given: string,
): Promise<{ models: ResolvedModel[]; preprocessing: ResolvedPreprocessing | null; experiment: ExperimentDetail | null; description: string }> {
  if (reference.kind === 'prefix') {
    if (reference.bucket !== null && reference.bucket !== runtime.store.bucket) {
      throw new CliError(`--model ${given}: names bucket ${reference.bucket}, but detl uses bucket ${runtime.store.bucket} (DETL_S3_BUCKET)`);
    }
    if (!(await runtime.store.headObject(modelJsonKey(reference.prefix)))) {
      throw new CliError(`--model ${given}: no model at ${runtime.store.uri(modelJsonKey(reference.prefix))}`);
    }
    // A fold model of a recorded run is preprocessed as that run's data was; any other prefix only
    // tells its input size, so it gets the plain resize without degrading.
    const owner = parseExperimentKey(reference.prefix)?.experimentId;
    const experiment = owner ? await runtime.tracking.getExperiment(owner) : null;
    const preprocessing = experiment?.datasetManifestKey ? await manifestPreprocessing(runtime, experiment) : null;
    const description = experiment ? `${runtime.store.uri(reference.prefix)} (of experiment ${experiment.id})` : runtime.store.uri(reference.prefix);
    return { models: [{ fold: null, prefix: reference.prefix }], preprocessing, experiment, description };
  }
  const experiment = await findRun(runtime.tracking, reference.ref, `--model ${given}`).catch((error: unknown) => {
    if (error instanceof CliError) throw error;
    throw new CliError(`--model ${given}: ${(error as Error).message}`);
  });
  if (!experiment) throw new CliError(`--model ${given}: no run with id, id prefix or workflow id "${reference.ref}" — see detl runs list`);
  const withModels = experiment.folds.filter((f) => f.status === 'succeeded' && f.modelKey !== null);
  if (withModels.length === 0) {
    throw new CliError(`--model ${given}: experiment ${experiment.id} (status ${experiment.status}) has no trained fold model yet — see detl runs show ${experiment.id}`);
  }
  let chosen = withModels;
  if (fold !== null) {
    chosen = withModels.filter((f) => f.foldIndex === fold);
    if (chosen.length === 0) {
      throw new CliError(`--fold ${fold}: experiment ${experiment.id} has no model for fold ${fold}; folds with a model: ${withModels.map((f) => f.foldIndex).join(', ')}`);
    }
  }
  if (!experiment.datasetManifestKey) throw new CliError(`--model ${given}: experiment ${experiment.id} records no dataset manifest, so how its images were preprocessed is unknown`);
  const preprocessing = await manifestPreprocessing(runtime, experiment);
  const models = chosen.map((f) => ({ fold: f.foldIndex, prefix: f.modelKey as string }));
  const folds = models.map((m) => m.fold).join(', ');
  const description =
    models.length > 1
      ? `experiment ${experiment.id} "${experiment.name}" — ensemble of ${models.length} fold models (folds ${folds}, mean of probabilities)`
      : `experiment ${experiment.id} "${experiment.name}" — fold ${folds} model`;
  return { models, preprocessing, experiment, description };
}

/** Size, crop and degrade of the experiment's sampling, read from its manifest. */
async function manifestPreprocessing(runtime: CliRuntime, experiment: ExperimentDetail): Promise<ResolvedPreprocessing> {
  const { CROP_POLICY, DatasetError, loadManifest } = await loadData();
  const key = experiment.datasetManifestKey as string;
  let manifest: DatasetManifest;
  try {
    manifest = await loadManifest(runtime.store, key);
  } catch (error) {
    if (error instanceof DatasetError) throw new CliError(`experiment ${experiment.id}: ${error.message}`);
    if ((error as Error).name === 'ObjectNotFoundError') throw new CliError(`experiment ${experiment.id}: its manifest ${runtime.store.uri(key)} is missing from the bucket`);
    throw error;
  }
  const crop = manifest.options['crop'];
  // preprocessImage implements one crop policy; a manifest made with another cannot be reproduced.
  if (crop !== CROP_POLICY) throw new CliError(`experiment ${experiment.id}: its images were cropped with "${String(crop)}", this detl preprocesses with "${CROP_POLICY}"`);
  const degrade = manifest.options['degradeToPixels'];
  return { imageSize: manifest.imageSize, degradeToPixels: typeof degrade === 'number' ? degrade : null, crop, manifestKey: key };
}

/** One image file decoded as the run's sampling did; a file that is no image is a CliError naming it. */
export async function preprocessFile(file: string, preprocessing: ResolvedPreprocessing | null): Promise<Uint8Array> {
  const { preprocessImage } = await loadData();
  const bytes = await readFile(file);
  if (bytes.byteLength === 0) throw new CliError(`${file}: empty file, not an image`);
  try {
    // Without an experiment the size is only known once the model is loaded; a decode at a small
    // size reports a corrupt file before anything loads, and the caller decodes again later.
    return await preprocessImage(bytes, preprocessing ?? { imageSize: 16, degradeToPixels: null });
  } catch (error) {
    throw new CliError(`${file}: not a readable PNG or JPEG image (${(error as Error).message})`);
  }
}

/** Loads one model and checks it takes square images of the run's size and has the four classes. */
export async function loadChecked(runtime: CliRuntime, source: ResolvedModel, preprocessing: ResolvedPreprocessing | null): Promise<LayersModel> {
  const { loadModelFromStore } = await import('@detl/ml');
  const where = runtime.store.uri(source.prefix);
  let model: LayersModel;
  try {
    model = await loadModelFromStore(runtime.store, source.prefix);
  } catch (error) {
    throw new CliError(`${source.fold === null ? '' : `fold ${source.fold}: `}${(error as Error).message}`);
  }
  const shape = model.inputs[0]?.shape ?? [];
  const classes = model.outputs[0]?.shape[1];
  const [, height, width, channels] = shape;
  const problem =
    shape.length !== 4 || height !== width || (channels !== 1 && channels !== 3)
      ? `takes input of shape [${shape.join(', ')}], not square grey or RGB images`
      : classes !== DATA_B_CLASSES.length
        ? `has ${String(classes)} outputs, not the ${DATA_B_CLASSES.length} classes ${DATA_B_CLASSES.join(' / ')} (a pretraining checkpoint?)`
        : preprocessing && height !== preprocessing.imageSize
          ? `takes ${String(height)}x${String(width)} px images, but its experiment's images are ${preprocessing.imageSize}x${preprocessing.imageSize} px (manifest ${preprocessing.manifestKey ?? ''})`
          : null;
  if (problem) {
    model.dispose();
    throw new CliError(`model ${where} ${problem}`);
  }
  return model;
}

async function predictAll(
  ml: MlModule,
  loaded: { model: LayersModel; source: ResolvedModel }[],
  inputs: InputImage[],
  pixels: Uint8Array[],
  overlays: string[] | null,
  size: number,
  scoring: Scoring,
  method: GradCamMethod,
): Promise<ImagePrediction[]> {
  const perModel = ensembleInputs(loaded, pixels, size, ml, scoring);
  const explainers = overlays ? overlayExplainers(ml, loaded, method) : [];
  try {
    const predictions: ImagePrediction[] = [];
    for (let index = 0; index < inputs.length; index += 1) {
      const rows = perModel.map((rowsOfModel) => rowsOfModel[index] as number[]);
      const mean = DATA_B_CLASSES.map((_, c) => rows.reduce((sum, row) => sum + (row[c] ?? 0), 0) / rows.length);
      const classIndex = mean.indexOf(Math.max(...mean));
      let overlay: string | null = null;
      if (overlays) {
        const image = pixels[index] as Uint8Array;
        // The ensemble's map for the class the ensemble predicted, of the image as it is (never mirrored).
        const { heatmap } = ml.ensembleGradCam(explainers, image, size, classIndex);
        overlay = overlays[index] as string;
        await writeAtomically(overlay, await ml.gradCamOverlayPng(image, size, heatmap), 'the overlay');
      }
      predictions.push({
        image: (inputs[index] as InputImage).file,
        probabilities: byClass(mean),
        predicted: DATA_B_CLASSES[classIndex] as string,
        confidence: mean[classIndex] as number,
        overlay,
        perModel: loaded.map(({ source }, m) => ({ fold: source.fold, prefix: source.prefix, probabilities: byClass(rows[m] as number[]) })),
      });
    }
    return predictions;
  } finally {
    for (const explainer of explainers) explainer.dispose();
  }
}

/**
 * Each model's class probabilities for every image (rows in image order), batched by the ml
 * library, flip-averaged when the scoring says so.
 */
export function ensembleInputs(loaded: { model: LayersModel }[], pixels: Uint8Array[], size: number, ml: MlModule, scoring: Scoring): number[][][] {
  const batch = new Uint8Array(pixels.length * size * size);
  pixels.forEach((image, index) => batch.set(image, index * size * size));
  return loaded.map(({ model }) => ml.predictProbabilities(model, { pixels: batch, count: pixels.length, size }, undefined, scoring));
}

function byClass(values: readonly number[]): Record<string, number> {
  return Object.fromEntries(DATA_B_CLASSES.map((name, c) => [name, values[c] ?? 0]));
}

function printPredictions(description: string, preprocessing: ResolvedPreprocessing, runtime: CliRuntime, predictions: ImagePrediction[], models: number): void {
  console.log(`model   ${description}`);
  console.log(`input   ${describeInput(preprocessing, runtime)}`);
  if (predictions.length > COMPACT_ABOVE) {
    printPredictionTable(predictions);
    return;
  }
  for (const prediction of predictions) {
    console.log(`\n${prediction.image}`);
    for (const [name, probability] of Object.entries(prediction.probabilities)) {
      console.log(`  ${name.padEnd(14)} ${probability.toFixed(4)}${name === prediction.predicted ? '  ← predicted' : ''}`);
    }
    console.log(`  predicted      ${prediction.predicted} (${(prediction.confidence * 100).toFixed(1)}%)`);
    if (prediction.overlay === null) continue;
    const how = models > 1 ? `mean of the ${models} fold models' maps for "${prediction.predicted}"` : `for "${prediction.predicted}"`;
    console.log(`  Grad-CAM       ${prediction.overlay} (${how})`);
  }
}

/** More images than this are printed one line each (a screened folder), not as a block each. */
const COMPACT_ABOVE = 2;

function printPredictionTable(predictions: ImagePrediction[]): void {
  const width = Math.max(...DATA_B_CLASSES.map((name) => name.length)) + 1;
  console.log(`\n${'predicted'.padEnd(width)} ${DATA_B_CLASSES.map((name) => name.padStart(width)).join('')}  image`);
  for (const prediction of predictions) {
    const probabilities = DATA_B_CLASSES.map((name) => (prediction.probabilities[name] ?? 0).toFixed(4).padStart(width)).join('');
    console.log(`${prediction.predicted.padEnd(width)} ${probabilities}  ${prediction.image}`);
  }
  const counts = DATA_B_CLASSES.map((name) => [name, predictions.filter((p) => p.predicted === name).length] as const).filter(([, n]) => n > 0);
  console.log(`\n${predictions.length} images predicted: ${counts.map(([name, n]) => `${name} ${n}`).join(', ')}`);
}

/** How images become network input, in words: size, crop, degrade, and where that was read from. */
export function describeInput(preprocessing: ResolvedPreprocessing, runtime: CliRuntime): string {
  const degrade = preprocessing.degradeToPixels === null ? 'not degraded' : `degraded to ${preprocessing.degradeToPixels} px and back`;
  const origin = preprocessing.manifestKey
    ? `, as in ${runtime.store.uri(preprocessing.manifestKey)}`
    : " (the model's input size; no experiment record says how its training data was preprocessed)";
  return `${preprocessing.imageSize}x${preprocessing.imageSize} px grey, ${preprocessing.crop}, ${degrade}${origin}`;
}
