import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { applyConfigOverrides, parseExperimentConfig, type ExperimentConfig } from '@detl/config';
import { CliError } from './cli-error';

/** Flags that shape an experiment's configuration. */
export interface ExperimentFlags {
  config?: string;
  set?: string[];
  dataset?: string;
  /** Manifest key printed by `detl data import`. */
  manifest?: string;
}

/**
 * Builds the validated configuration from a JSON file, `--dataset` and `--set` overrides, in that
 * order of precedence (later wins). Every problem names the file or flag it came from.
 */
export function resolveExperimentConfig(flags: ExperimentFlags, preset: Record<string, unknown> = {}): ExperimentConfig {
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
  return parseExperimentConfig(raw, origin);
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
