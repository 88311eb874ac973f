import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// tools/ensure-binaries.sh with a stand-in `go` that takes a few seconds to "build": the first run
// must not be silent while it works. The real build takes many minutes and is not run here.
const script = path.resolve(__dirname, '../../../tools/ensure-binaries.sh');
let dir: string;

const FAKE_GO = `#!/bin/sh
# go version -m: no build info, so the script builds. go install -v <pkg>@<version>: a few packages, then the binary.
[ "$1" = install ] || exit 1
for arg in "$@"; do pkg="$arg"; done
name=$(basename "\${pkg%@*}")
echo "go: downloading example.com/dep v1.0.0" >&2
for i in 1 2 3; do echo "example.com/dep/p$i"; sleep 1; done
printf '#!/bin/sh\\nexit 0\\n' > "$GOBIN/$name"
chmod +x "$GOBIN/$name"
`;

function ensure(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(script, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'detl-ensure-binaries-'));
  await mkdir(path.join(dir, 'fake-bin'));
  await writeFile(path.join(dir, 'fake-bin', 'go'), FAKE_GO);
  await chmod(path.join(dir, 'fake-bin', 'go'), 0o755);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('tools/ensure-binaries.sh', () => {
  it('reports each build in progress with its elapsed time, then where the binaries are', async () => {
    const tools = path.join(dir, 'tools');
    const env = { ...process.env, PATH: `${path.join(dir, 'fake-bin')}:${process.env['PATH'] ?? ''}`, DETL_TOOLS_DIR: tools, DETL_BUILD_PROGRESS_SECONDS: '1', GOMAXPROCS: '2' };
    const first = await ensure(env);
    expect(first.stderr).toContain('building temporal from github.com/temporalio/cli/cmd/temporal@v1.5.1 with go on 2 cores');
    expect(first.stderr).toMatch(/still building minio: 0m0\ds, 1 modules downloaded, [123] packages compiled/);
    expect(first.stderr).toMatch(/still building temporal: 0m0\ds/);
    expect(first.stderr).toMatch(/built .*\/bin\/minio in 0m0\ds/);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(`DETL_TEMPORAL_BIN=${tools}/bin/temporal\nDETL_MINIO_BIN=${tools}/bin/minio\n`);
    expect(await readFile(path.join(tools, 'bin', 'minio.version'), 'utf8')).toMatch(/^github\.com\/minio\/minio@v0\.0\.0-/);
    // Built once: a second run says nothing and builds nothing.
    const again = await ensure(env);
    expect(again.stderr).toBe('');
    expect(again.stdout).toBe(first.stdout);
  });
});
