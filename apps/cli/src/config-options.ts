import { Option } from 'commander';
import { ConfigError, configField, parseConfigValue, type ConfigPath, type ConfigValue, type ParseConfigValueOptions } from '@detl/config';
import { CliError } from './cli-error';

/** How {@link configOption} words and defaults a flag. */
export interface ConfigOptionSettings {
  /** Placeholder of the value; default: the field's choices (`<fail|skip>`) or `<n>`. */
  value?: string;
  /** Help text instead of the schema's description (still followed by the field and its bounds). */
  help?: string;
  /** Show and apply the schema's default (flags whose absence should not fall back to something else). */
  withDefault?: boolean;
  /** The flag takes only the field's numbers (a worker's `--threads` has no `auto`); parse it with the same setting. */
  numbersOnly?: boolean;
}

/**
 * A commander option that sets the experiment-config field `path`: its help text, bounds and
 * default come from the schema in @detl/config, so the CLI never repeats them.
 */
export function configOption(flag: string, path: ConfigPath, settings: ConfigOptionSettings = {}): Option {
  const field = configField(path);
  const value = settings.value ?? (field.choices.length > 0 && !field.number ? `<${field.choices.join('|')}>` : '<n>');
  const expected = settings.numbersOnly ? (field.expectedNumber ?? field.expected) : field.expected;
  const option = new Option(`${flag} ${value}`, `${settings.help ?? field.description ?? path} [${path}: ${expected}]`);
  if (settings.withDefault && field.defaultValue !== undefined && field.defaultValue !== null) option.default(String(field.defaultValue));
  return option;
}

/**
 * Parses a flag's text as the config field `path` through the schema.
 * @throws CliError (exit 2) naming the flag, its value, the field and what it expects.
 */
export function configFlagValue<P extends ConfigPath>(flag: string, path: P, text: string, options: Omit<ParseConfigValueOptions, 'origin'> = {}): ConfigValue<P> {
  try {
    return parseConfigValue(path, text, { ...options, origin: flag });
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(error.message, 2);
    throw error;
  }
}
