import path from 'node:path';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

// The lint rules are the guard that keeps workflow code replay-safe; check they really bite.
const workspaceRoot = path.resolve(__dirname, '../../..');
const eslint = new ESLint({ cwd: workspaceRoot });

async function restrictedImportMessages(source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: path.join(workspaceRoot, 'libs/workflows/src/workflows.ts') });
  return (result?.messages ?? []).filter((message) => message.ruleId === '@typescript-eslint/no-restricted-imports').map((message) => message.message);
}

describe('workflow lint rules', () => {
  // The first lint builds the type-aware program of the whole workspace (a minute on 2 busy cores, as
  // CI saw); building it once here keeps each case's timeout about the rule it checks.
  beforeAll(async () => {
    await restrictedImportMessages('export const warm = 1;\n');
  }, 300_000);

  it.each([
    ["import { readFile } from 'node:fs/promises';", 'Node built-ins'],
    ["import fs from 'fs';", 'Node built-ins'],
    ["import { S3Client } from '@aws-sdk/client-s3';", 'must not do I/O'],
    ["import { sampleDataset } from '@detl/data';", 'only import types'],
  ])('rejects %s', async (line, expected) => {
    const messages = await restrictedImportMessages(`${line}\nexport const x = 1;\n`);
    expect(messages.join('\n')).toContain(expected);
  }, 60_000);

  it('allows type-only imports from I/O libraries and the shared error list', async () => {
    const messages = await restrictedImportMessages(
      "import type { DetlActivities } from '@detl/activities';\nimport { NON_RETRYABLE_ERRORS } from '@detl/activities/non-retryable';\nexport type A = DetlActivities;\nexport const b = NON_RETRYABLE_ERRORS;\n",
    );
    expect(messages).toEqual([]);
  }, 60_000);
});
