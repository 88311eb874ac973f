import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MissingBinaryError, resolveToolBinary, toolsBinDir } from './tool-binary';

let dir: string;

async function executable(file: string): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, '#!/bin/sh\nexit 0\n');
  await chmod(file, 0o755);
  return file;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'detl-tool-binary-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('resolveToolBinary', () => {
  it('prefers the explicit environment variable', async () => {
    const explicit = await executable(path.join(dir, 'explicit', 'temporal'));
    await executable(path.join(dir, 'tools', 'bin', 'temporal'));
    expect(resolveToolBinary('temporal', { DETL_TEMPORAL_BIN: explicit, DETL_TOOLS_DIR: path.join(dir, 'tools'), PATH: '' })).toBe(explicit);
  });

  it('rejects an environment variable pointing nowhere instead of falling back', () => {
    expect(() => resolveToolBinary('minio', { DETL_MINIO_BIN: path.join(dir, 'nope'), PATH: '' })).toThrow(/DETL_MINIO_BIN=.*nope/);
  });

  it('finds the binary in the tools folder before PATH', async () => {
    const inTools = await executable(path.join(dir, 'tools', 'bin', 'minio'));
    await executable(path.join(dir, 'path-dir', 'minio'));
    expect(resolveToolBinary('minio', { DETL_TOOLS_DIR: path.join(dir, 'tools'), PATH: path.join(dir, 'path-dir') })).toBe(inTools);
  });

  it('falls back to PATH', async () => {
    const onPath = await executable(path.join(dir, 'path-only', 'temporal'));
    expect(resolveToolBinary('temporal', { DETL_TOOLS_DIR: path.join(dir, 'empty'), PATH: `/nonexistent:${path.join(dir, 'path-only')}` })).toBe(onPath);
  });

  it('ignores files that are not executable', async () => {
    await mkdir(path.join(dir, 'plain', 'bin'), { recursive: true });
    await writeFile(path.join(dir, 'plain', 'bin', 'minio'), 'not a program');
    expect(() => resolveToolBinary('minio', { DETL_TOOLS_DIR: path.join(dir, 'plain'), PATH: '' })).toThrow(MissingBinaryError);
  });

  it('tells the user how to get a missing binary', () => {
    const error = (() => {
      try {
        resolveToolBinary('temporal', { DETL_TOOLS_DIR: path.join(dir, 'empty'), PATH: '' });
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected a MissingBinaryError');
    })();
    expect(error).toBeInstanceOf(MissingBinaryError);
    expect(error.message).toContain('tools/ensure-binaries.sh');
    expect(error.message).toContain(path.join(dir, 'empty', 'bin', 'temporal'));
  });

  it('defaults the tools folder to ~/.cache/detl-tools/bin', () => {
    expect(toolsBinDir({ HOME: '/home/someone' })).toBe('/home/someone/.cache/detl-tools/bin');
  });
});
