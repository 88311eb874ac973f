import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { afterEach, describe, expect, it } from 'vitest';
import { CLIENT_SOURCES, isClientBuildStale } from './start-dashboard';

describe('isClientBuildStale', () => {
  let work: string | undefined;
  afterEach(() => work && rmSync(work, { recursive: true, force: true }));

  it('rebuilds a missing bundle, or one older than any source file, even deep in a source folder', () => {
    work = mkdtempSync(path.join(tmpdir(), 'detl-client-build-'));
    const index = path.join(work, 'dist', 'index.html');
    const sourceDir = path.join(work, 'src', 'pages', 'deep');
    const sourceFile = path.join(sourceDir, 'screening.tsx');
    const sharedFile = path.join(work, 'shared.ts');
    mkdirSync(sourceDir, { recursive: true });
    writeFileSync(sourceFile, 'export {}');
    writeFileSync(sharedFile, 'export {}');
    const sources = [path.join(work, 'src'), sharedFile, path.join(work, 'absent-in-a-package')];
    expect(isClientBuildStale(index, sources)).toBe(true);

    mkdirSync(path.dirname(index));
    writeFileSync(index, '<html></html>');
    const at = (file: string, seconds: number) => utimesSync(file, seconds, seconds);
    [sourceDir, path.join(work, 'src', 'pages'), path.join(work, 'src')].forEach((dir) => at(dir, 1_000));
    at(sourceFile, 1_000);
    at(sharedFile, 1_000);
    at(index, 2_000);
    expect(isClientBuildStale(index, sources)).toBe(false);

    at(sourceFile, 3_000);
    expect(isClientBuildStale(index, sources)).toBe(true);
    at(sourceFile, 1_000);
    at(sharedFile, 3_000);
    expect(isClientBuildStale(index, sources)).toBe(true);
  });

  it('watches the client, its Vite config and the shared modules the client imports, all of which exist', () => {
    const repo = path.resolve(__dirname, '../../../..');
    expect(CLIENT_SOURCES.map((source) => path.relative(repo, source).split(path.sep).join('/'))).toEqual([
      'apps/dashboard/src/client',
      'apps/dashboard/src/api-types.ts',
      'apps/dashboard/vite.config.mts',
      'libs/config/src',
      'libs/tracking/src/json-shapes.ts',
      'libs/ml/src/browser.ts',
      'libs/ml/src/evaluation/grad-cam.ts',
      'libs/ml/src/evaluation/localization.ts',
      'libs/ml/src/core/models.ts',
      'libs/ml/src/core/scoring.ts',
    ]);
    // A moved source would silently stop counting; a missing one fails here instead.
    expect(CLIENT_SOURCES.filter((source) => !existsSync(source))).toEqual([]);
  });

  it('watches every workspace file the client imports, however deep', () => {
    // What Vite bundles from the workspace: the client's imports followed through every workspace file
    // they reach (packages in node_modules are not followed), as TypeScript resolves them.
    const repo = path.resolve(__dirname, '../../../..');
    const options = ts.convertCompilerOptionsFromJson(
      (ts.readConfigFile(path.join(repo, 'tsconfig.base.json'), ts.sys.readFile).config as { compilerOptions: unknown }).compilerOptions,
      repo,
    ).options;
    const reached = new Set<string>();
    const pending = [path.join(repo, 'apps/dashboard/src/client/main.tsx')];
    for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
      if (reached.has(file)) continue;
      reached.add(file);
      for (const { fileName } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
        const resolved = ts.resolveModuleName(fileName, file, options, ts.sys).resolvedModule?.resolvedFileName;
        if (resolved && !path.relative(repo, resolved).split(path.sep).includes('node_modules') && !resolved.endsWith('.d.ts')) pending.push(resolved);
      }
    }
    const watched = (file: string) => CLIENT_SOURCES.some((source) => file === source || file.startsWith(source + path.sep));
    expect([...reached].filter((file) => !watched(file)).map((file) => path.relative(repo, file))).toEqual([]);
    // The walk does reach the shared libraries (it would pass vacuously otherwise).
    expect([...reached].map((file) => path.relative(repo, file).split(path.sep).join('/'))).toEqual(
      expect.arrayContaining(['libs/tracking/src/json-shapes.ts', 'libs/ml/src/evaluation/grad-cam.ts', 'libs/ml/src/core/models.ts']),
    );
  });
});
