import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BINDING_PATH, checkNativeBuild, nativeBuildDirectory, nativeBuildKey, stampPath, type NativeBuildStamp } from './native-build-layout';

// A fake cache entry in a temporary DETL_TOOLS_DIR: the checks only look at the stamp and file
// sizes, so no download is needed to exercise every reason they give.
let toolsDir: string;
let entry: string;

function writeEntry(overrides: Partial<NativeBuildStamp> = {}): NativeBuildStamp {
  const files: Record<string, string> = {
    [BINDING_PATH]: 'binding-bytes',
    'deps/lib/libtensorflow_cc.so.2': 'tensorflow-bytes',
  };
  for (const [relative, content] of Object.entries(files)) {
    mkdirSync(join(entry, relative, '..'), { recursive: true });
    writeFileSync(join(entry, relative), content);
  }
  const stamp: NativeBuildStamp = {
    key: 'test-key',
    variant: 'gpu',
    tfjsVersion: '4.22.0',
    tensorflowVersion: '2.21.0',
    nodeAbi: process.versions.modules,
    napiVersion: 8,
    files: Object.fromEntries(Object.entries(files).map(([relative, content]) => [relative, Buffer.byteLength(content)])),
    builtAt: new Date(0).toISOString(),
    buildSeconds: 1,
    ...overrides,
  };
  writeFileSync(stampPath(entry), JSON.stringify(stamp));
  return stamp;
}

beforeEach(() => {
  toolsDir = mkdtempSync(join(tmpdir(), 'detl-tools-'));
  entry = nativeBuildDirectory(nativeBuildKey('gpu', '4.22.0'), { DETL_TOOLS_DIR: toolsDir });
  mkdirSync(entry, { recursive: true });
});

afterEach(() => {
  rmSync(toolsDir, { recursive: true, force: true });
});

describe('nativeBuildDirectory / nativeBuildKey', () => {
  it('puts each variant under DETL_TOOLS_DIR with TensorFlow, Node ABI and N-API in the key', () => {
    expect(entry).toBe(join(toolsDir, 'tfjs-native', `tfjs-node-4.22.0_tf-2.21.0_abi${process.versions.modules}_napi8_gpu`));
    expect(nativeBuildKey('cpu', '4.22.0')).not.toBe(nativeBuildKey('gpu', '4.22.0'));
  });
});

describe('checkNativeBuild', () => {
  it('accepts a complete entry', () => {
    const stamp = writeEntry();
    expect(checkNativeBuild(entry)).toEqual({ ok: true, stamp, directory: entry });
  });

  it('rejects a folder without a stamp (a build that never finished)', () => {
    writeEntry();
    rmSync(stampPath(entry));
    expect(checkNativeBuild(entry)).toEqual({ ok: false, reason: `no finished build in ${entry}` });
  });

  it('rejects an unreadable stamp', () => {
    writeEntry();
    writeFileSync(stampPath(entry), '{"key": ');
    const check = checkNativeBuild(entry);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toMatch(new RegExp(`^${stampPath(entry).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is unreadable \\(`));
  });

  it('rejects a build for another Node ABI', () => {
    writeEntry({ nodeAbi: '1' });
    expect(checkNativeBuild(entry)).toEqual({ ok: false, reason: `${entry} was built for Node ABI 1, this Node is ABI ${process.versions.modules}` });
  });

  it('rejects a truncated file, naming both sizes', () => {
    writeEntry();
    const library = join(entry, 'deps/lib/libtensorflow_cc.so.2');
    truncateSync(library, 3);
    expect(checkNativeBuild(entry)).toEqual({ ok: false, reason: `${library} has 3 bytes, the build recorded 16 (truncated or replaced)` });
  });

  it('rejects a missing file', () => {
    writeEntry();
    const binding = join(entry, BINDING_PATH);
    rmSync(binding);
    expect(checkNativeBuild(entry)).toEqual({ ok: false, reason: `${binding} is missing` });
  });
});
