import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// The real command line, as a user runs it: bad input must stop before any service starts, with the
// offending field or file named and a non-zero exit code.
const detl = path.resolve(__dirname, '../../../bin/detl');

function run(args: string[]) {
  const home = mkdtempSync(path.join(os.tmpdir(), 'detl-cli-'));
  const result = spawnSync(detl, args, { encoding: 'utf8', env: { ...process.env, DETL_HOME: home }, timeout: 60_000 });
  return { ...result, home };
}

describe('detl command line input validation', () => {
  it('rejects an unknown configuration key, naming it, without starting anything', () => {
    const result = run(['run', '--set', 'pretrain.epochz=3']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('pretrain.epochz: unknown key');
    expect(existsSync(path.join(result.home, 'logs'))).toBe(false);
  });

  it('names the configuration file that is not JSON', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'detl-cli-config-'));
    const file = path.join(dir, 'broken.json');
    writeFileSync(file, '{ "pretrain": { "epochs": 3, } ');
    const result = run(['run', '--config', file]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/--config .*broken\.json: not valid JSON/);
  });

  it('names a bad value in a configuration file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'detl-cli-config-'));
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ dataset: { folds: 1 } }));
    const result = run(['run', '--config', file]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('bad.json');
    expect(result.stderr).toContain('dataset.folds');
  });

  it('rejects a dataset folder that does not exist', () => {
    const result = run(['run', '--dataset', '/nonexistent/cxr']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('--dataset /nonexistent/cxr: not a folder');
  });

  it('rejects a malformed manifest key and two data sources at once', () => {
    const key = run(['run', '--manifest', 'manifests/abc.json']);
    expect(key.status).toBe(2);
    expect(key.stderr).toContain('dataset.source.key: expected manifests/<sha256>.json');
    const both = run(['run', '--manifest', `manifests/${'a'.repeat(64)}.json`, '--dataset', os.tmpdir()]);
    expect(both.status).toBe(1);
    expect(both.stderr).toContain('--dataset and --manifest both name the data');
  });

  it('validates runs list flags before connecting', () => {
    const limit = run(['runs', 'list', '--limit', '0']);
    expect(limit.status).toBe(1);
    expect(limit.stderr).toContain('--limit 0');
    const status = run(['runs', 'list', '--status', 'exploded']);
    expect(status.status).toBe(1);
    expect(status.stderr).toContain('--status exploded: expected one of');
  });

  it('rejects unknown commands and options with usage help', () => {
    const result = run(['train-everything']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/unknown command/);
  });
});
