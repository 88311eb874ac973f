// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';
import globals from 'globals';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((name) => `node:${name}`)];

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
              regex: '^@detl/(?!activities/src/non-retryable$)',
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
    files: ['libs/*/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['@detl/cli', '@detl/worker', '**/apps/**'], message: 'Libraries never import apps.' }] }],
    },
  },
);
