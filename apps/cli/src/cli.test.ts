import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
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

describe('bin/detl', () => {
  it('runs through symlinks, as npx and npm link start it, from any folder', () => {
    // node_modules/.bin/detl (npx) and the global bin folder (npm link) hold a symlink; a relative
    // link inside a linked folder is the chain npm link makes.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'detl-link-'));
    symlinkSync(detl, path.join(dir, 'detl'));
    mkdirSync(path.join(dir, 'bin'));
    symlinkSync('../detl', path.join(dir, 'bin', 'detl'));
    for (const link of [path.join(dir, 'detl'), path.join(dir, 'bin', 'detl')]) {
      const result = spawnSync(link, ['--help'], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('Usage: detl');
    }
  });
});

describe('DETL_HOME', () => {
  // Services that cannot be reached: the command fails at its first connection, after choosing its
  // home and before writing anything there.
  const unreachable = {
    DETL_DATABASE_URL: 'postgresql://u:p@db.invalid:5432/x',
    DETL_TEMPORAL_ADDRESS: 'temporal.invalid:7233',
    DETL_S3_ENDPOINT: 'http://s3.invalid:9000',
    AWS_ACCESS_KEY_ID: 'a',
    AWS_SECRET_ACCESS_KEY: 'b',
  };
  const withoutHome = () => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...unreachable };
    delete env['DETL_HOME'];
    return env;
  };
  const checkout = path.resolve(__dirname, '../../..');

  it('outside a checkout, says on stderr which home is in use and how to point at another', () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'detl-elsewhere-'));
    const result = spawnSync(detl, ['runs', 'list'], { encoding: 'utf8', cwd, env: withoutHome(), timeout: 60_000 });
    expect(result.stderr.split('\n')[0]).toBe(
      `detl: using ${path.join(checkout, '.detl')} (the home of the detl checkout this command runs from; you are outside it) — set DETL_HOME=<folder> to use another`,
    );
    expect(existsSync(path.join(cwd, '.detl'))).toBe(false);
  });

  it('inside the checkout, in any subfolder, uses its home without a word; with DETL_HOME set, too', () => {
    const inside = spawnSync(detl, ['runs', 'list'], { encoding: 'utf8', cwd: __dirname, env: withoutHome(), timeout: 60_000 });
    expect(inside.stderr).not.toContain('detl: using');
    expect(existsSync(path.join(__dirname, '.detl'))).toBe(false);
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'detl-elsewhere-'));
    const named = spawnSync(detl, ['runs', 'list'], { encoding: 'utf8', cwd, env: { ...withoutHome(), DETL_HOME: path.join(cwd, 'home') }, timeout: 60_000 });
    expect(named.stderr).not.toContain('detl: using');
  });
});

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

  it('refuses a native backend this machine cannot run, naming why, before anything starts', () => {
    // No machine running these tests has an NVIDIA driver; the GPU engine is refused up front.
    const result = run(['run', '--set', 'runtime.backend=tensorflow-gpu']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/runtime\.backend=tensorflow-gpu cannot run on this machine: .*NVIDIA driver/);
    expect(existsSync(path.join(result.home, 'logs'))).toBe(false);
    const worker = run(['worker', '--backend', 'tensorflow-gpu']);
    expect(worker.status).toBe(2);
    expect(worker.stderr).toContain('--backend tensorflow-gpu cannot run here');
    const threads = run(['worker', '--threads', '0']);
    expect(threads.status).toBe(2);
    expect(threads.stderr).toContain('--threads 0: runtime.threads: expected an integer from 1 to 256');
    const config = run(['run', '--set', 'runtime.threads=0']);
    expect(config.status).toBe(2);
    expect(config.stderr).toContain('runtime.threads');
  });

  it('detl doctor reports the backend, how it was chosen, its threads and the faster ones not taken', () => {
    const result = spawnSync(detl, ['doctor', '--json', '--threads', '1'], { encoding: 'utf8', timeout: 60_000 });
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout) as { backend: string; chosenBy: string; threads: { intraOp: number }; notTaken: { preference: string; error: string }[]; selfTest: string; nativeBuilds: { variant: string; ready: boolean }[] };
    const nativeReady = report.nativeBuilds.find((build) => build.variant === 'cpu')?.ready;
    expect(report.backend).toBe(nativeReady ? 'tensorflow' : 'wasm');
    expect(report.chosenBy).toBe('default (auto)');
    expect(report.notTaken[0]?.preference).toBe('tensorflow-gpu');
    expect(report.selfTest).toMatch(/conv2d \+ gradient \+ transform ran/);
    if (nativeReady) expect(report.threads.intraOp).toBe(1);
    const wasm = spawnSync(detl, ['doctor', '--json'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, DETL_TF_BACKEND: 'wasm' } });
    expect(JSON.parse(wasm.stdout)).toMatchObject({ backend: 'wasm', chosenBy: 'DETL_TF_BACKEND=wasm' });
  });

  it('rejects unknown commands and options with usage help', () => {
    const result = run(['train-everything']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/unknown command/);
  });
});
