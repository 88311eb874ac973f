/**
 * The bucket's layout: every object key detl writes or reads is built here, and keys read back
 * (a model prefix given on the command line, an overlay listed in the run record) are parsed here,
 * so the layout of docs/architecture.md has one owner and a hash or id is never cut out of a key.
 *
 * ```
 * shards/<sha256>.u8                                  content-addressed image / mask shards
 * manifests/<sha256>.json                             content-addressed sampling manifests
 * manifests/inputs/<fingerprint>.txt                  sampling inputs → manifest key (re-run shortcut)
 * manifests/near-duplicates/<sha256>.json            a stored near-duplicate search (by its inputs' hash)
 * experiments/<id>/pretrain/epoch-<n>/…               pretraining checkpoint per epoch
 * experiments/<id>/pretrain/best/…                    the kept pretrained weights
 * experiments/<id>/folds/<k>/epoch-<n>/…              fine-tuning checkpoint per epoch
 * experiments/<id>/folds/<k>/final/…                  the fold's model
 * experiments/<id>/folds/<k>/predictions.json         the fold's held-out predictions
 * experiments/<id>/gradcam/<class>/<image>-pred-<p>.png  Grad-CAM overlays
 * experiments/<id>/gradcam/index.json                 what each overlay shows (the gallery)
 * experiments/<id>/report/<file>                      summary.json, figures
 * ```
 */
import { InvalidObjectKeyError } from './object-key';

/** Files of an experiment's report folder. */
export const REPORT_FILES = {
  summary: 'summary.json',
  confusionMatrix: 'confusion-matrix.png',
  learningCurves: 'learning-curves.png',
} as const;

/** One of {@link REPORT_FILES}. */
export type ReportFile = (typeof REPORT_FILES)[keyof typeof REPORT_FILES];

/**
 * The files of a stored model (the tfjs layers format): `model.json`, the topology and weights
 * manifest that makes a key prefix a model, and the `weights.bin` it names.
 */
export const MODEL_FILES = ['model.json', 'weights.bin'] as const;

/** One of {@link MODEL_FILES}. */
export type ModelFile = (typeof MODEL_FILES)[number];

const SHA256 = /^[0-9a-f]{64}$/;
// Experiment ids are UUIDs from PostgreSQL; anything else in that place is not one of our keys.
const EXPERIMENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

function checkSha256(sha256: string): string {
  if (!SHA256.test(sha256)) throw new InvalidObjectKeyError(sha256, 'expected a lowercase hex SHA-256 (64 characters)');
  return sha256;
}

function checkExperimentId(experimentId: string): string {
  if (!EXPERIMENT_ID.test(experimentId)) throw new InvalidObjectKeyError(experimentId, 'expected an experiment id (a UUID)');
  return experimentId;
}

function checkIndex(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0) throw new InvalidObjectKeyError(String(value), `expected a ${what}, an integer from 0`);
  return value;
}

function checkSegment(value: string, what: string): string {
  if (!SEGMENT.test(value) || value === '.' || value === '..') throw new InvalidObjectKeyError(value, `expected a ${what} of letters, digits, ".", "_" or "-"`);
  return value;
}

/** Key of a content-addressed shard: `shards/<sha256>.u8`. */
export function shardKey(sha256: string): string {
  return `shards/${checkSha256(sha256)}.u8`;
}

/** The SHA-256 a shard key names, or null when the key is not a shard key. */
export function parseShardKey(key: string): { sha256: string } | null {
  const match = /^shards\/([0-9a-f]{64})\.u8$/.exec(key);
  return match ? { sha256: match[1] as string } : null;
}

/** Key of a content-addressed sampling manifest: `manifests/<sha256>.json`. */
export function manifestKey(sha256: string): string {
  return `manifests/${checkSha256(sha256)}.json`;
}

/** The SHA-256 a manifest key names, or null when the key is not a manifest key. */
export function parseManifestKey(key: string): { sha256: string } | null {
  const match = /^manifests\/([0-9a-f]{64})\.json$/.exec(key);
  return match ? { sha256: match[1] as string } : null;
}

/** Key of the pointer from a sampling's inputs (a fingerprint) to the manifest they produced. */
export function samplingInputsKey(fingerprint: string): string {
  return `manifests/inputs/${checkSegment(fingerprint, 'sampling fingerprint')}.txt`;
}

/**
 * Key of a stored near-duplicate search, content-addressed by the hash of its inputs (method, image
 * ids and hashes): `manifests/near-duplicates/<sha256>.json`.
 */
export function nearDuplicatesKey(inputsSha256: string): string {
  return `manifests/near-duplicates/${checkSha256(inputsSha256)}.json`;
}

/** Prefix of everything one experiment stores: `experiments/<id>`. */
export function experimentPrefix(experimentId: string): string {
  return `experiments/${checkExperimentId(experimentId)}`;
}

/**
 * The experiment a key belongs to and the key's path inside the experiment's folder
 * (`folds/0/final`, `report/summary.json`), or null for a key outside any experiment.
 */
export function parseExperimentKey(key: string): { experimentId: string; path: string } | null {
  const match = /^experiments\/([^/]+)\/(.+)$/.exec(key);
  if (!match || !EXPERIMENT_ID.test(match[1] as string)) return null;
  return { experimentId: match[1] as string, path: match[2] as string };
}

/** Where a training task keeps its checkpoints: the pretraining, or one fold's fine-tuning. */
export type TrainingTarget = { kind: 'pretrain' } | { kind: 'fold'; fold: number };

function trainingPrefix(experimentId: string, target: TrainingTarget): string {
  return target.kind === 'pretrain' ? `${experimentPrefix(experimentId)}/pretrain` : `${experimentPrefix(experimentId)}/folds/${checkIndex(target.fold, 'fold index')}`;
}

/** Prefix of one epoch's checkpoint of a training task: `…/pretrain/epoch-<n>` or `…/folds/<k>/epoch-<n>`. */
export function epochCheckpointPrefix(experimentId: string, target: TrainingTarget, epoch: number): string {
  return `${trainingPrefix(experimentId, target)}/epoch-${checkIndex(epoch, 'epoch number')}`;
}

/** Prefix of the kept pretrained weights: `experiments/<id>/pretrain/best`. */
export function pretrainedModelPrefix(experimentId: string): string {
  return `${trainingPrefix(experimentId, { kind: 'pretrain' })}/best`;
}

/** Prefix of a fold's fine-tuned model: `experiments/<id>/folds/<k>/final`. */
export function foldModelPrefix(experimentId: string, fold: number): string {
  return `${trainingPrefix(experimentId, { kind: 'fold', fold })}/final`;
}

/** Key of a fold's held-out predictions: `experiments/<id>/folds/<k>/predictions.json`. */
export function foldPredictionsKey(experimentId: string, fold: number): string {
  return `${trainingPrefix(experimentId, { kind: 'fold', fold })}/predictions.json`;
}

/** Key of one file of a stored model: `<prefix>/model.json` or `<prefix>/weights.bin`. */
export function modelFileKey(modelPrefix: string, file: ModelFile): string {
  return `${modelPrefix}/${file}`;
}

/** Key of the model file under a model prefix (`<prefix>/model.json`): what makes the prefix a model. */
export function modelJsonKey(modelPrefix: string): string {
  return modelFileKey(modelPrefix, 'model.json');
}

/**
 * A model prefix as a user may write it (`…/final`, `…/final/`, `…/final/model.json`), reduced to the
 * prefix itself.
 */
export function normalizeModelPrefix(text: string): string {
  return text.replace(/\/model\.json$/, '').replace(/\/+$/, '');
}

/** Folder of an experiment's Grad-CAM overlays, with its trailing `/` (a listing prefix). */
export function gradCamFolder(experimentId: string): string {
  return `${experimentPrefix(experimentId)}/gradcam/`;
}

/** What one Grad-CAM overlay shows, as its key spells it. */
export interface GradCamOverlayName {
  /** The image's true class (a class name). */
  trueClass: string;
  /** The image id; characters a key should not carry become `_` (see {@link gradCamOverlayKey}). */
  imageId: string;
  /** The class the explaining model predicted. */
  predictedClass: string;
}

/** An image id as one key segment: unusual characters become `_`, at most 120 characters. */
function imageSegment(imageId: string): string {
  return imageId.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 120);
}

/** Key of one Grad-CAM overlay: `experiments/<id>/gradcam/<true class>/<image>-pred-<predicted>.png`. */
export function gradCamOverlayKey(experimentId: string, overlay: GradCamOverlayName): string {
  const image = imageSegment(overlay.imageId);
  return `${gradCamFolder(experimentId)}${checkSegment(overlay.trueClass, 'class name')}/${image}-pred-${checkSegment(overlay.predictedClass, 'class name')}.png`;
}

/**
 * The experiment and names an overlay key carries, or null for a key that is not an overlay. The
 * image comes back as the key spells it (already made key-safe).
 */
export function parseGradCamOverlayKey(key: string): ({ experimentId: string } & GradCamOverlayName) | null {
  const inside = parseExperimentKey(key);
  const match = inside && /^gradcam\/([A-Za-z0-9._-]+)\/(.+)-pred-([A-Za-z0-9._-]+)\.png$/.exec(inside.path);
  if (!inside || !match) return null;
  return { experimentId: inside.experimentId, trueClass: match[1] as string, imageId: match[2] as string, predictedClass: match[3] as string };
}

/** Key of the experiment's Grad-CAM gallery index: `experiments/<id>/gradcam/index.json`. */
export function gradCamIndexKey(experimentId: string): string {
  return `${gradCamFolder(experimentId)}index.json`;
}

/** Key of one file of the experiment's report: `experiments/<id>/report/<file>`. */
export function reportKey(experimentId: string, file: ReportFile): string {
  return `${experimentPrefix(experimentId)}/report/${file}`;
}
