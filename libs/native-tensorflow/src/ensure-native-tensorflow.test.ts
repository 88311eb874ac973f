import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureNativeTensorflow } from './ensure-native-tensorflow';
import { checkInstalledNativeBuild } from './native-build-layout';

describe('ensureNativeTensorflow on a machine that cannot build', () => {
  it('reports the missing Python in one line, and leaves a working install wired as it was', async () => {
    const before = checkInstalledNativeBuild('cpu');
    // An empty cache folder forces a build, and a Python that does not exist makes it impossible.
    const toolsDir = await mkdtemp(join(tmpdir(), 'detl-no-python-'));
    try {
      const lines: string[] = [];
      const outcome = await ensureNativeTensorflow({
        variant: 'cpu',
        log: (line) => lines.push(line),
        env: { ...process.env, DETL_TOOLS_DIR: toolsDir, DETL_PYTHON: join(toolsDir, 'no-such-python') },
      });
      expect(outcome).toEqual({ status: 'unavailable', reason: expect.stringMatching(/no Python found .*no-such-python.*Python ≥ 3\.9 with pip/) });
      expect(lines).toEqual([]);
      const after = checkInstalledNativeBuild('cpu');
      expect(after.ok).toBe(before.ok);
      if (before.ok && after.ok) expect(after.directory).toBe(before.directory);
    } finally {
      await rm(toolsDir, { recursive: true, force: true });
    }
  });
});
