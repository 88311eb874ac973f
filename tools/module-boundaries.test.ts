import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// docs/architecture.md says which project may import which; the Nx tags and the boundary rule in
// eslint.config.mjs are what enforce it, so check that they reject what the table forbids. The
// probes are linted as the text of real files, which typed linting needs to find in a project.
const workspaceRoot = path.resolve(__dirname, '..');
const eslint = new ESLint({ cwd: workspaceRoot });

async function boundaryMessages(filePath: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: path.join(workspaceRoot, filePath) });
  return (result?.messages ?? []).filter((message) => message.ruleId === '@nx/enforce-module-boundaries').map((message) => message.message);
}

describe('module boundaries (Nx tags + @nx/enforce-module-boundaries)', () => {
  it.each([
    ['libs/config/src/index.ts', "import { checkInstalledNativeBuild } from '@detl/native-tensorflow';", 'scope:config'],
    ['libs/storage/src/index.ts', "import { createTrackingStore } from '@detl/tracking';", 'scope:storage'],
    ['libs/ml/src/index.ts', "import { sampleDataset } from '@detl/data';", 'scope:ml'],
    ['libs/data/src/index.ts', "import { initBackend } from '@detl/ml';", 'scope:data'],
    ['apps/dashboard/src/server/query-schemas.ts', "import { initBackend } from '@detl/ml';", 'scope:dashboard'],
    ['libs/native-tensorflow/src/index.ts', "import { startDashboard } from '@detl/dashboard';", 'Imports of apps are forbidden'],
  ])('rejects in %s: %s', async (file, line, expected) => {
    const messages = await boundaryMessages(file, `${line}\nexport const probe = 1;\n`);
    expect(messages.join('\n')).toContain(expected);
  }, 120_000);

  it('allows what the table allows', async () => {
    expect(await boundaryMessages('libs/data/src/index.ts', "import { createObjectStore } from '@detl/storage';\nimport { DATA_B_CLASSES } from '@detl/config';\nexport const probe = [createObjectStore, DATA_B_CLASSES];\n")).toEqual([]);
    expect(await boundaryMessages('libs/ml/src/index.ts', "import { checkInstalledNativeBuild } from '@detl/native-tensorflow';\nexport const probe = checkInstalledNativeBuild;\n")).toEqual([]);
  }, 120_000);
});
