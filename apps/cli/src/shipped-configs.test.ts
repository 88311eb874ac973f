import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseExperimentConfig, parseSweepSpec } from '@detl/config';
import { loadSweep } from './commands/sweep';

// Every configuration and sweep in configs/ must still load as `detl run -c` and `detl sweep launch -c`
// load it: a sweep built on another file (most on cxr-real-best.json) breaks silently when that file
// changes, e.g. when the shipped config gains a lever its DETL rows refuse.

const configs = path.resolve(__dirname, '../../../configs');
const sweeps = path.join(configs, 'sweeps');
const jsonFiles = (folder: string) => readdirSync(folder).filter((name) => name.endsWith('.json')).sort();

describe('configs/', () => {
  it.each(jsonFiles(configs))('%s is a valid experiment config', (name) => {
    const file = path.join(configs, name);
    expect(() => parseExperimentConfig(JSON.parse(readFileSync(file, 'utf8')), file)).not.toThrow();
  });

  it.each(jsonFiles(sweeps))('sweeps/%s expands into valid experiments', (name) => {
    const file = path.join(sweeps, name);
    const spec = parseSweepSpec(JSON.parse(readFileSync(file, 'utf8')), file);
    const dataset = spec.dataset === undefined ? null : path.resolve(sweeps, spec.dataset);
    if (dataset !== null && !existsSync(dataset)) {
      console.warn(`skipped: ${name} names the dataset ${dataset}, which is not on this machine`);
      return;
    }
    expect(loadSweep(file).experiments.length).toBeGreaterThan(0);
  });
});
