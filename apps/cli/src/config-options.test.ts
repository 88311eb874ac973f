import { describe, expect, it } from 'vitest';
import type { Command, Option } from 'commander';
import { configField, type ConfigPath } from '@detl/config';
import { buildProgram } from './main';

// Flags that set config values take their default, bounds and help text from the config schema.

function option(path: string[], flag: string): Option {
  let command: Command = buildProgram();
  for (const name of path) {
    const next = command.commands.find((candidate) => candidate.name() === name);
    if (!next) throw new Error(`no command ${path.join(' ')}`);
    command = next;
  }
  const found = command.options.find((candidate) => candidate.long === flag);
  if (!found) throw new Error(`no option ${flag} on ${path.join(' ')}`);
  return found;
}

describe('config flags', () => {
  it.each([
    [['data', 'import'], '--image-size', 'dataset.imageSize', true],
    [['data', 'import'], '--folds', 'dataset.folds', true],
    [['data', 'import'], '--seed', 'seed', true],
    [['data', 'import'], '--on-corrupt', 'dataset.onCorruptImage', true],
    [['data', 'import'], '--degrade-to', 'dataset.degradeToPixels', false],
    [['evaluate'], '--on-corrupt', 'dataset.onCorruptImage', false],
    [['worker'], '--threads', 'runtime.threads', false],
    [['doctor'], '--backend', 'runtime.backend', false],
  ] as const)('%s %s is %s from the schema', (command, flag, path, withDefault) => {
    const field = configField(path as ConfigPath);
    const found = option([...command], flag);
    // --threads takes only the numbers of runtime.threads (auto is what the command does without it).
    expect(found.description).toContain(`[${path}: ${flag === '--threads' ? field.expectedNumber : field.expected}]`);
    expect(found.defaultValue).toBe(withDefault ? String(field.defaultValue) : undefined);
  });
});
