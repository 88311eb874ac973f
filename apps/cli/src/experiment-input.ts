import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { applyConfigOverrides, applyStoredSamplingShape, parseExperimentConfig, type ExperimentConfig, type StoredSamplingShape } from '@detl/config';
import { ObjectNotFoundError, type ObjectStore } from '@detl/storage';
import { CliError } from './cli-error';

/** Flags that shape an experiment's configuration. */
export interface ExperimentFlags {
  config?: string;
  set?: string[];
  dataset?: string;
  /** Manifest key printed by `detl data import`. */
  manifest?: string;
}

/** The configuration as the flags give it, before validation and defaults. */
interface ExperimentInput {
  raw: Record<string, unknown>;
  /** The file or flags it came from, for messages. */
  origin: string;
}

/**
 * Builds the validated configuration from a JSON file, `--dataset` and `--set` overrides, in that
 * order of precedence (later wins). Every problem names the file or flag it came from.
 */
export function resolveExperimentConfig(flags: ExperimentFlags, preset: Record<string, unknown> = {}): ExperimentConfig {
  const input = experimentInput(flags, preset);
  return parseExperimentConfig(input.raw, input.origin);
}

/**
 * The configuration a run starts with: {@link resolveExperimentConfig}, and for a run on a stored
 * sampling (`--manifest`, `dataset.source.kind: 'manifest'`) `dataset.imageSize` and `dataset.folds`
 * taken from the manifest, so the configuration need not repeat them.
 * @throws ConfigError (exit 2) naming a field the configuration states differently from the manifest;
 * CliError (exit 2) when the manifest is missing or not a valid manifest.
 */
export async function resolveRunConfig(flags: ExperimentFlags, preset: Record<string, unknown>, store: ObjectStore): Promise<ExperimentConfig> {
  const input = experimentInput(flags, preset);
  const config = parseExperimentConfig(input.raw, input.origin);
  const source = config.dataset.source;
  if (source.kind !== 'manifest') return config;
  const shape = await storedSamplingShape(store, source.key);
  return parseExperimentConfig(applyStoredSamplingShape(input.raw, shape, source.key, input.origin), input.origin);
}

/**
 * Image size and fold count of a stored manifest.
 * @throws CliError (exit 2) when the manifest is missing or not a valid manifest.
 */
export async function storedSamplingShape(store: ObjectStore, key: string): Promise<StoredSamplingShape> {
  // @detl/data (sharp) loads only for the commands that need it.
  const { DatasetError, loadManifest, manifestSummary } = await import('@detl/data');
  try {
    const manifest = await loadManifest(store, key);
    return { imageSize: manifest.imageSize, folds: manifestSummary(manifest).dataB.length };
  } catch (error) {
    if (error instanceof ObjectNotFoundError) throw new CliError(`dataset.source.key ${key}: no such manifest in ${store.bucket} (detl data import prints the keys it stores)`, 2);
    if (error instanceof DatasetError) throw new CliError(`dataset.source.key ${key}: ${error.message}`, 2);
    throw error;
  }
}

function experimentInput(flags: ExperimentFlags, preset: Record<string, unknown>): ExperimentInput {
  let raw: Record<string, unknown> = structuredClone(preset);
  let origin = 'configuration';
  if (flags.config) {
    const file = path.resolve(flags.config);
    if (!existsSync(file)) throw new CliError(`--config ${flags.config}: file not found`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new CliError(`--config ${flags.config}: not valid JSON (${(error as Error).message})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new CliError(`--config ${flags.config}: expected a JSON object at the top level`);
    }
    raw = mergeDeep(raw, parsed as Record<string, unknown>);
    origin = flags.config;
  }
  if (flags.dataset) {
    const root = path.resolve(flags.dataset);
    if (!existsSync(root) || !statSync(root).isDirectory()) throw new CliError(`--dataset ${flags.dataset}: not a folder`);
    raw = mergeDeep(raw, { dataset: { source: { kind: 'folder', root } } });
  }
  if (flags.manifest) {
    if (flags.dataset) throw new CliError('--dataset and --manifest both name the data; give one');
    raw = mergeDeep(raw, { dataset: { source: { kind: 'manifest', key: flags.manifest } } });
  }
  raw = applyConfigOverrides(raw, flags.set ?? []);
  return { raw, origin };
}

function mergeDeep(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const current = result[key];
    const bothObjects = isPlainObject(current) && isPlainObject(value);
    // A different dataset source kind replaces the old source instead of mixing their keys.
    const replacesSource = key === 'source' && isPlainObject(current) && isPlainObject(value) && current.kind !== value.kind;
    result[key] = bothObjects && !replacesSource ? mergeDeep(current, value) : value;
  }
  return result;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
