import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CUDA_DRIVER_LIBRARY, findCudaDriver, gpuLibraryDirectories, gpuRuntimeEnvironment, nativeBuildSharedObjects, unresolvedSharedLibraries } from './gpu-runtime';
import { BINDING_PATH } from './native-build-layout';

// The helpers on a fake build folder; gpu-build.test.ts runs them on the real one.
let buildDir: string;

beforeEach(() => {
  buildDir = mkdtempSync(join(tmpdir(), 'detl-gpu-layout-'));
  for (const dir of ['deps/lib', 'deps/nvidia/cudnn/lib', 'deps/nvidia/cublas/lib', 'deps/nvidia/cuda_nvcc/bin', 'lib/napi-v8']) mkdirSync(join(buildDir, dir), { recursive: true });
  for (const file of ['deps/lib/libtensorflow_cc.so.2', 'deps/nvidia/cudnn/lib/libcudnn.so.9', 'deps/nvidia/cuda_nvcc/bin/ptxas', 'deps/nvidia/cudnn/lib/README.txt', BINDING_PATH]) {
    writeFileSync(join(buildDir, file), '');
  }
});

afterEach(() => {
  rmSync(buildDir, { recursive: true, force: true });
});

describe('gpu runtime environment', () => {
  it('lists every deps/nvidia/*/lib folder, sorted, and none for a build without CUDA wheels', () => {
    expect(gpuLibraryDirectories(buildDir)).toEqual([join(buildDir, 'deps/nvidia/cublas/lib'), join(buildDir, 'deps/nvidia/cudnn/lib')]);
    rmSync(join(buildDir, 'deps/nvidia'), { recursive: true });
    expect(gpuLibraryDirectories(buildDir)).toEqual([]);
    expect(gpuRuntimeEnvironment(buildDir, {})).toEqual({});
  });

  it('puts the CUDA folders in front of an existing LD_LIBRARY_PATH without repeating them', () => {
    const cublas = join(buildDir, 'deps/nvidia/cublas/lib');
    const cudnn = join(buildDir, 'deps/nvidia/cudnn/lib');
    expect(gpuRuntimeEnvironment(buildDir, {})).toEqual({ LD_LIBRARY_PATH: `${cublas}:${cudnn}` });
    expect(gpuRuntimeEnvironment(buildDir, { LD_LIBRARY_PATH: `/usr/local/nvidia/lib64:${cudnn}` })).toEqual({ LD_LIBRARY_PATH: `${cublas}:${cudnn}:/usr/local/nvidia/lib64` });
  });

  it('lists the binding and the shared objects under deps/, not other files', () => {
    expect(nativeBuildSharedObjects(buildDir).sort()).toEqual(
      [BINDING_PATH, 'deps/lib/libtensorflow_cc.so.2', 'deps/nvidia/cudnn/lib/libcudnn.so.9'].map((file) => join(buildDir, file)).sort(),
    );
  });
});

describe('findCudaDriver', () => {
  it('finds the driver library in a folder of LD_LIBRARY_PATH', () => {
    const driverDir = join(buildDir, 'driver');
    mkdirSync(driverDir);
    writeFileSync(join(driverDir, CUDA_DRIVER_LIBRARY), '');
    expect(findCudaDriver({ LD_LIBRARY_PATH: `/nonexistent:${driverDir}` })).toBe(join(driverDir, CUDA_DRIVER_LIBRARY));
  });

  it('otherwise answers from ldconfig -p', () => {
    const result = findCudaDriver({});
    // Either answer is right depending on the host; a found driver must be a path to the soname.
    if (result !== null) expect(result.endsWith(CUDA_DRIVER_LIBRARY)).toBe(true);
  });
});

const hasCompiler = spawnSync('cc', ['--version']).status === 0;

describe('unresolvedSharedLibraries', () => {
  it('reports nothing for a binary whose dependencies all resolve', () => {
    expect(unresolvedSharedLibraries([process.execPath])).toEqual([]);
  });

  it.skipIf(!hasCompiler)('names the soname a library needs but cannot find, ignoring LD_LIBRARY_PATH', () => {
    // liba needs libb; with libb gone, only an LD_LIBRARY_PATH pointing elsewhere could help, and it is removed.
    const dir = join(buildDir, 'linked');
    mkdirSync(dir);
    writeFileSync(join(dir, 'b.c'), 'int b(void) { return 1; }\n');
    writeFileSync(join(dir, 'a.c'), 'int b(void);\nint a(void) { return b(); }\n');
    const cc = (args: string[]) => expect(spawnSync('cc', args, { cwd: dir, encoding: 'utf8' }).stderr).toBe('');
    cc(['-shared', '-fPIC', '-Wl,-soname,libdetlb.so.1', '-o', 'libdetlb.so.1', 'b.c']);
    cc(['-shared', '-fPIC', '-o', 'libdetla.so', 'a.c', join(dir, 'libdetlb.so.1')]);
    const kept = join(buildDir, 'kept');
    mkdirSync(kept);
    renameSync(join(dir, 'libdetlb.so.1'), join(kept, 'libdetlb.so.1'));
    expect(unresolvedSharedLibraries([join(dir, 'libdetla.so')], { ...process.env, LD_LIBRARY_PATH: kept })).toEqual([{ file: join(dir, 'libdetla.so'), missing: ['libdetlb.so.1'] }]);
  });
});
