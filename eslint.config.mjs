// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';
import globals from 'globals';
import nx from '@nx/eslint-plugin';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((name) => `node:${name}`)];

/**
 * Which project may import which, by the Nx tags in each project.json: the table of
 * docs/architecture.md, enforced. Workflows may name the I/O libraries only for their types (the
 * workflow rule below bans value imports); apps are processes and no library imports one.
 */
const productionBoundaries = [
  { sourceTag: 'scope:config', onlyDependOnLibsWithTags: ['scope:config'] },
  { sourceTag: 'scope:native-tensorflow', onlyDependOnLibsWithTags: ['scope:native-tensorflow'] },
  { sourceTag: 'scope:storage', onlyDependOnLibsWithTags: ['scope:config'] },
  { sourceTag: 'scope:tracking', onlyDependOnLibsWithTags: ['scope:config'] },
  { sourceTag: 'scope:services', onlyDependOnLibsWithTags: ['scope:config'] },
  { sourceTag: 'scope:data', onlyDependOnLibsWithTags: ['scope:config', 'scope:storage'] },
  { sourceTag: 'scope:ml', onlyDependOnLibsWithTags: ['scope:config', 'scope:storage', 'scope:native-tensorflow'] },
  { sourceTag: 'scope:activities', onlyDependOnLibsWithTags: ['scope:config', 'scope:storage', 'scope:tracking', 'scope:data', 'scope:ml', 'scope:services'] },
  { sourceTag: 'scope:workflows', onlyDependOnLibsWithTags: ['scope:activities', 'scope:config', 'scope:tracking', 'scope:ml', 'scope:data'] },
  { sourceTag: 'scope:dashboard', onlyDependOnLibsWithTags: ['scope:config', 'scope:storage', 'scope:tracking'] },
  { sourceTag: 'scope:worker', onlyDependOnLibsWithTags: ['type:lib'] },
  // The CLI is the launcher: it starts the worker and the dashboard.
  { sourceTag: 'scope:cli', onlyDependOnLibsWithTags: ['type:lib', 'type:app'] },
  { sourceTag: 'type:tools', onlyDependOnLibsWithTags: ['type:lib', 'type:app'] },
  { sourceTag: 'type:infra', onlyDependOnLibsWithTags: [] },
];

/** Tests beside the code also use the real-service starters (MinIO, PostgreSQL, Temporal) of other libraries. */
const testBoundaries = [
  { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
  { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib', 'type:app'] },
  { sourceTag: 'type:tools', onlyDependOnLibsWithTags: ['type:lib', 'type:app'] },
  { sourceTag: 'type:infra', onlyDependOnLibsWithTags: [] },
];
const testFiles = ['**/*.test.ts', '**/*.test.tsx', '**/test-support/**/*.ts'];

/**
 * Every package's `exports` map is its public surface; a path into another package's `src/` would
 * reach past it (TypeScript and Node already refuse it, this names the rule in the editor).
 */
const deepImportBan = {
  regex: '^@detl/[^/]+/src(/|$)',
  message: "Import a package's public entry (its package.json `exports`), not its src/ files.",
};
/**
 * `@detl/<lib>/testing` holds test helpers and doubles (throw-away MinIO, test databases, the
 * in-memory object store); production code must not depend on them. Tests, test-support folders
 * and tools (benchmarks start throw-away services) may.
 */
const testingImportBan = {
  regex: '^@detl/[^/]+/testing$',
  message: 'Test helpers (@detl/*/testing) are for tests, test-support code and tools only.',
};
const boundaryOptions = {
  allow: [],
  // The CLI imports tfjs- and sharp-heavy libraries lazily so that light commands start fast, and
  // benchmarks load a library only for the bench that runs; that is about start-up time, not about
  // bundles (nothing here is bundled for lazy chunks), so static imports elsewhere are fine.
  checkDynamicDependenciesExceptions: ['@detl/ml', '@detl/data', '@detl/dashboard', '@detl/native-tensorflow', '@detl/config', '@detl/storage'],
};

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/generated/**', '**/dist/**', 'bench/results/**', '.detl/**', '**/.venv*/**'] },
  { files: ['**/*.mjs'], languageOptions: { globals: globals.node } },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code is replayed deterministically inside Temporal's sandbox: no Node built-ins,
    // no I/O libraries, and only type imports from the libraries that do I/O.
    files: ['libs/workflows/src/**/*.ts'],
    ignores: ['libs/workflows/src/**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must not use Node built-ins.' })),
          patterns: [
            {
              regex: '^@detl/(?!activities/non-retryable$)',
              allowTypeImports: true,
              message: 'Workflows may only import types from I/O libraries.',
            },
            {
              group: ['@aws-sdk/*', '@prisma/*', 'pg', 'sharp', '@tensorflow/*', '@temporalio/activity', '@temporalio/worker', '@temporalio/client'],
              message: 'Workflow code must not do I/O.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.mts', '**/*.mjs'],
    rules: { 'no-restricted-imports': ['error', { patterns: [deepImportBan] }] },
  },
  {
    files: ['apps/**/*.ts', 'apps/**/*.tsx', 'libs/**/*.ts', 'libs/**/*.tsx'],
    ignores: testFiles,
    rules: { 'no-restricted-imports': ['error', { patterns: [deepImportBan, testingImportBan] }] },
  },
  {
    files: ['**/*.ts', '**/*.tsx'],
    ignores: testFiles,
    plugins: { '@nx': nx },
    rules: { '@nx/enforce-module-boundaries': ['error', { ...boundaryOptions, depConstraints: productionBoundaries }] },
  },
  {
    // The browser client screens images with libs/ml's own Grad-CAM through its one Node-free entry
    // (tools/module-boundaries.test.ts fails if a Node built-in becomes reachable from the client).
    files: ['apps/dashboard/src/client/**/*.ts', 'apps/dashboard/src/client/**/*.tsx'],
    ignores: testFiles,
    plugins: { '@nx': nx },
    rules: { '@nx/enforce-module-boundaries': ['error', { ...boundaryOptions, allow: ['@detl/ml/browser'], depConstraints: productionBoundaries }] },
  },
  {
    files: testFiles,
    plugins: { '@nx': nx },
    // The shared vitest config (workspace root, no project) is tested where its log filter matters.
    rules: { '@nx/enforce-module-boundaries': ['error', { ...boundaryOptions, allow: ['../../../vitest.shared.mts'], depConstraints: testBoundaries }] },
  },
  {
    // The launcher starts the dashboard in-process and the worker as a process (as do its tests), the
    // benchmarks start the dashboard; nothing else may import an app.
    files: ['apps/cli/src/**/*.ts', 'tools/**/*.ts'],
    plugins: { '@nx': nx },
    rules: { '@nx/enforce-module-boundaries': ['error', { ...boundaryOptions, allow: ['@detl/dashboard', '@detl/worker/main'], depConstraints: [...productionBoundaries, ...testBoundaries] }] },
  },
);
