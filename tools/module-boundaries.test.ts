import { readdirSync, readFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import path from 'node:path';
import { ESLint } from 'eslint';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

// docs/architecture.md says which project may import which; the Nx tags and the boundary rule in
// eslint.config.mjs are what enforce it, so check that they reject what the table forbids. The
// probes are linted as the text of real files, which typed linting needs to find in a project.
const workspaceRoot = path.resolve(__dirname, '..');
const eslint = new ESLint({ cwd: workspaceRoot });

async function ruleMessages(ruleId: string, filePath: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: path.join(workspaceRoot, filePath) });
  return (result?.messages ?? []).filter((message) => message.ruleId === ruleId).map((message) => message.message);
}

function boundaryMessages(filePath: string, source: string): Promise<string[]> {
  return ruleMessages('@nx/enforce-module-boundaries', filePath, source);
}

function restrictedImportMessages(filePath: string, source: string): Promise<string[]> {
  return ruleMessages('no-restricted-imports', filePath, source);
}

/** Every workspace package folder (libs and apps), with its package.json. */
const packages = ['libs', 'apps'].flatMap((group) =>
  readdirSync(path.join(workspaceRoot, group)).map((name) => {
    const folder = path.join(group, name);
    return { folder, manifest: JSON.parse(readFileSync(path.join(workspaceRoot, folder, 'package.json'), 'utf8')) as { name: string; exports?: Record<string, string> } };
  }),
);

// The first lint builds the type-aware program of the whole workspace (over a minute on 2 busy cores);
// building it once here keeps each case's timeout about the rule it checks.
beforeAll(async () => {
  await ruleMessages('@nx/enforce-module-boundaries', 'libs/config/src/index.ts', 'export const warm = 1;\n');
}, 300_000);

describe('module boundaries (Nx tags + @nx/enforce-module-boundaries)', () => {
  it.each([
    ['libs/config/src/index.ts', "import { checkInstalledNativeBuild } from '@detl/native-tensorflow';", 'scope:config'],
    ['libs/storage/src/index.ts', "import { createTrackingStore } from '@detl/tracking';", 'scope:storage'],
    ['libs/ml/src/index.ts', "import { sampleDataset } from '@detl/data';", 'scope:ml'],
    ['libs/data/src/index.ts', "import { initBackend } from '@detl/ml';", 'scope:data'],
    ['apps/dashboard/src/server/query-schemas.ts', "import { initBackend } from '@detl/ml';", 'scope:dashboard'],
    // A library the dashboard does not reach (its tests use ml, data and services), so no cycle is reported first.
    ['libs/activities/src/index.ts', "import { startDashboard } from '@detl/dashboard';", 'Imports of apps are forbidden'],
  ])('rejects in %s: %s', async (file, line, expected) => {
    const messages = await boundaryMessages(file, `${line}\nexport const probe = 1;\n`);
    expect(messages.join('\n')).toContain(expected);
  }, 120_000);

  it('allows what the table allows', async () => {
    expect(await boundaryMessages('libs/data/src/index.ts', "import { createObjectStore } from '@detl/storage';\nimport { DATA_B_CLASSES } from '@detl/config';\nexport const probe = [createObjectStore, DATA_B_CLASSES];\n")).toEqual([]);
    expect(await boundaryMessages('libs/ml/src/index.ts', "import { checkInstalledNativeBuild } from '@detl/native-tensorflow';\nexport const probe = checkInstalledNativeBuild;\n")).toEqual([]);
  }, 120_000);
});

describe('package entry points (package.json exports + lint)', () => {
  const resolveFromCli = createRequire(path.join(workspaceRoot, 'apps/cli/src/main.ts')).resolve;

  it.each(packages.map(({ folder, manifest }) => [folder, manifest] as const))('%s has an exports map', (_folder, manifest) => {
    expect(manifest.exports, `${manifest.name} needs an exports map`).toBeDefined();
    expect(manifest.exports?.['./package.json']).toBe('./package.json');
  });

  it('resolves the public subpaths and refuses deep src/ paths', () => {
    expect(resolveFromCli('@detl/activities/non-retryable')).toBe(path.join(workspaceRoot, 'libs/activities/src/non-retryable.ts'));
    expect(resolveFromCli('@detl/worker/main')).toBe(path.join(workspaceRoot, 'apps/worker/src/main.ts'));
    expect(resolveFromCli('@detl/tracking/testing')).toBe(path.join(workspaceRoot, 'libs/tracking/src/testing.ts'));
    expect(resolveFromCli('@detl/tracking/json-shapes')).toBe(path.join(workspaceRoot, 'libs/tracking/src/json-shapes.ts'));
    expect(resolveFromCli('@detl/config/experiment-config')).toBe(path.join(workspaceRoot, 'libs/config/src/experiment-config.ts'));
    for (const deep of ['@detl/activities/src/non-retryable', '@detl/tracking/src/test-database', '@detl/worker/src/main.ts']) {
      expect(() => resolveFromCli(deep), deep).toThrow(expect.objectContaining({ code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' }));
    }
  });

  it('keeps the test helpers out of the production barrels', () => {
    // Read, not imported: loading the barrels would start Prisma and the AWS SDK for nothing.
    const barrel = (lib: string) => readFileSync(path.join(workspaceRoot, 'libs', lib, 'src/index.ts'), 'utf8');
    expect(barrel('tracking')).not.toMatch(/test-database|createTestDatabase/);
    expect(barrel('services')).not.toMatch(/test-minio|startTestMinio/);
    expect(barrel('storage')).not.toMatch(/memory-object-store|MemoryObjectStore/);
  });

  const DEEP = 'not its src/ files';
  const TEST_HELPERS = 'are for tests, test-support code and tools only';
  // [file the probe is linted as, import, what the rule says (null: allowed)]
  it.each([
    ['libs/workflows/src/index.ts', "import { NON_RETRYABLE_ERRORS } from '@detl/activities/src/non-retryable';", DEEP],
    ['libs/activities/src/activities.test.ts', "import { createTrackingStore } from '@detl/tracking/src/tracking-store';", DEEP],
    ['tools/bench/data.ts', "import { mapLimit } from '@detl/data/src/concurrency';", DEEP],
    ['libs/activities/src/index.ts', "import { createTestDatabase } from '@detl/tracking/testing';", TEST_HELPERS],
    ['apps/dashboard/src/server/query-schemas.ts', "import { MemoryObjectStore } from '@detl/storage/testing';", TEST_HELPERS],
    ['apps/cli/src/main.ts', "import { startTestMinio } from '@detl/services/testing';", TEST_HELPERS],
    ['libs/activities/src/activities.test.ts', "import { createTestDatabase } from '@detl/tracking/testing';", null],
    ['apps/worker/src/test-support/fault-services.ts', "import { startTestMinio } from '@detl/services/testing';", null],
    ['tools/bench/dashboard.ts', "import { MemoryObjectStore } from '@detl/storage/testing';", null],
    ['libs/workflows/src/index.ts', "import { NON_RETRYABLE_ERRORS } from '@detl/activities/non-retryable';", null],
  ] as const)('in %s: %s -> %s', async (file, line, expected) => {
    const messages = await restrictedImportMessages(file, `${line}\nexport const probe = 1;\n`);
    if (expected === null) expect(messages).toEqual([]);
    else expect(messages.join('\n')).toContain(expected);
  }, 120_000);
});

/** The workspace's module resolution (tsconfig.base.json: bundler, package.json exports). */
const baseCompilerOptions = ts.convertCompilerOptionsFromJson(
  (ts.readConfigFile(path.join(workspaceRoot, 'tsconfig.base.json'), ts.sys.readFile).config as { compilerOptions: unknown }).compilerOptions,
  workspaceRoot,
).options;

/**
 * Walks the imports (value, type and dynamic) of `entry` through every workspace source file they
 * reach, as TypeScript resolves them, and lists what those files name outside the workspace: Node
 * built-ins and packages (not followed), with the file naming each.
 */
function reachableOutsideImports(entry: string): { builtins: string[]; packages: string[] } {
  const builtins = new Set<string>();
  const packages = new Set<string>();
  const seen = new Set<string>();
  const pending = [entry];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const { fileName: specifier } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      const where = `${specifier} (in ${path.relative(workspaceRoot, file)})`;
      if (isBuiltin(specifier)) {
        builtins.add(where);
        continue;
      }
      const resolved = ts.resolveModuleName(specifier, file, baseCompilerOptions, ts.sys).resolvedModule?.resolvedFileName;
      // Workspace packages resolve (through their node_modules links) to their real src/ files.
      if (resolved && !path.relative(workspaceRoot, resolved).split(path.sep).includes('node_modules') && !resolved.endsWith('.d.ts')) pending.push(resolved);
      else packages.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!);
    }
  }
  return { builtins: [...builtins].sort(), packages: [...packages].sort() };
}

describe('Node-free entries (what the dashboard browser bundle may reach)', () => {
  const resolveFromDashboard = createRequire(path.join(workspaceRoot, 'apps/dashboard/src/index.ts')).resolve;

  // The browser client names the JSON column shapes through these; they must stay zod only.
  it.each(['@detl/config/experiment-config', '@detl/config/stages', '@detl/tracking/json-shapes'])('%s reaches no Node built-in and no package but zod', (entry) => {
    const reached = reachableOutsideImports(resolveFromDashboard(entry));
    expect(reached.builtins).toEqual([]);
    expect(reached.packages.filter((name) => name !== 'zod')).toEqual([]);
  });

  it('the dashboard client (and the wire types it shares with the server) reaches no Node built-in', () => {
    for (const entry of ['apps/dashboard/src/client/main.tsx', 'apps/dashboard/src/api-types.ts']) {
      expect(reachableOutsideImports(path.join(workspaceRoot, entry)).builtins, entry).toEqual([]);
    }
  });

  it('sees a built-in reached through a barrel (the check can fail)', () => {
    // `@detl/config` re-exports the service settings, which read files and the environment.
    expect(reachableOutsideImports(resolveFromDashboard('@detl/config')).builtins).toContain('node:fs (in libs/config/src/service-settings.ts)');
  });
});
