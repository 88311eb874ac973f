import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { BINDING_PATH, checkInstalledNativeBuild } from './native-build-layout';

/**
 * Soname of the CUDA driver library. It comes from the host's NVIDIA driver (in containers: mounted
 * by the NVIDIA container toolkit), never from pip, so a build on a machine without a driver lacks it.
 */
export const CUDA_DRIVER_LIBRARY = 'libcuda.so.1';

/** Paths `ldconfig` is commonly found at; non-root PATHs often lack the sbin folders. */
const LDCONFIG_CANDIDATES = ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig'];

/**
 * Where the dynamic loader would find the CUDA driver library: the `ldconfig -p` cache (where the
 * driver installer and the NVIDIA container toolkit put it) or a folder of `LD_LIBRARY_PATH`.
 * @returns its path, or null when this machine has no NVIDIA driver.
 */
export function findCudaDriver(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env['LD_LIBRARY_PATH'] ?? '').split(delimiter).filter(Boolean)) {
    if (existsSync(join(dir, CUDA_DRIVER_LIBRARY))) return join(dir, CUDA_DRIVER_LIBRARY);
  }
  for (const ldconfig of LDCONFIG_CANDIDATES) {
    const result = spawnSync(ldconfig, ['-p'], { encoding: 'utf8' });
    if (result.error || result.status !== 0) continue;
    // Lines look like: "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"
    for (const line of result.stdout.split('\n')) {
      const match = /^\s*(\S+) \(([^)]*)\) => (\S+)/.exec(line);
      if (match && match[1] === CUDA_DRIVER_LIBRARY && (match[2] ?? '').includes('x86-64')) return match[3] ?? null;
    }
    return null;
  }
  return null;
}

/**
 * The `lib` folders of the CUDA 12 wheels inside a gpu build (`deps/nvidia/<package>/lib`), sorted.
 * Empty for a cpu build.
 */
export function gpuLibraryDirectories(buildDir: string): string[] {
  const nvidia = join(buildDir, 'deps', 'nvidia');
  if (!existsSync(nvidia)) return [];
  return readdirSync(nvidia, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(nvidia, entry.name, 'lib')))
    .map((entry) => join(nvidia, entry.name, 'lib'))
    .sort();
}

/**
 * Environment for a process that loads a gpu build: `LD_LIBRARY_PATH` with every CUDA `lib` folder
 * of the build in front of what `env` already has.
 *
 * Why: TensorFlow links no CUDA library; its loader in `libtensorflow_framework.so.2` dlopens them
 * by soname at run time, and glibc then searches `LD_LIBRARY_PATH`, the RUNPATH of that library
 * (`$ORIGIN/../nvidia/<pkg>/lib`, which the build's `deps/` layout satisfies for cudart, cuDNN,
 * cuBLAS, cuFFT, cuSPARSE, CUPTI, NCCL) and the ld.so cache. `libcusolver.so.11` is not on that
 * RUNPATH, so without this variable TensorFlow cannot load cuSOLVER (its GPU linear-algebra
 * kernels). `LD_LIBRARY_PATH` is read once when a process starts, so it must be set on the child's
 * environment, not on `process.env` of a running process.
 */
export function gpuRuntimeEnvironment(buildDir: string, env: NodeJS.ProcessEnv = process.env): { LD_LIBRARY_PATH?: string } {
  const dirs = gpuLibraryDirectories(buildDir);
  if (dirs.length === 0) return {};
  const existing = (env['LD_LIBRARY_PATH'] ?? '').split(delimiter).filter((dir) => dir && !dirs.includes(dir));
  return { LD_LIBRARY_PATH: [...dirs, ...existing].join(delimiter) };
}

/**
 * {@link gpuRuntimeEnvironment} of the gpu build `@tensorflow/tfjs-node-gpu` is wired to in this
 * checkout, or `{}` when none is installed (nothing to add then). Meant for spawning the process
 * that runs the `tensorflow-gpu` backend: `fork(entry, args, { env: { ...process.env, ...gpuChildEnvironment() } })`.
 */
export function gpuChildEnvironment(env: NodeJS.ProcessEnv = process.env): { LD_LIBRARY_PATH?: string } {
  const installed = checkInstalledNativeBuild('gpu');
  return installed.ok ? gpuRuntimeEnvironment(installed.directory, env) : {};
}

/** A shared object of a build and the sonames `ldd` could not resolve for it. */
export interface UnresolvedLibrary {
  file: string;
  missing: string[];
}

/** The compiled binding and every shared object under `deps/` of a build folder (files, not links). */
export function nativeBuildSharedObjects(buildDir: string): string[] {
  const found: string[] = [join(buildDir, BINDING_PATH)];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && /\.so(\.\d+)*$/.test(entry.name)) found.push(path);
    }
  };
  walk(join(buildDir, 'deps'));
  return found.filter((path) => existsSync(path) && statSync(path).isFile());
}

/**
 * Runs `ldd` on each file and lists the sonames it reports as `not found`. `LD_LIBRARY_PATH` is
 * removed first, so what resolves does so through the libraries' own RUNPATHs, as it will for any
 * process that did not set the variable.
 * @throws when `ldd` itself cannot run.
 */
export function unresolvedSharedLibraries(files: string[], env: NodeJS.ProcessEnv = process.env): UnresolvedLibrary[] {
  const cleanEnv = { ...env };
  delete cleanEnv['LD_LIBRARY_PATH'];
  const unresolved: UnresolvedLibrary[] = [];
  for (const file of files) {
    const result = spawnSync('ldd', [file], { encoding: 'utf8', env: cleanEnv, maxBuffer: 8 << 20 });
    if (result.error) throw new Error(`ldd ${file}: ${result.error.message}`);
    const missing = [...result.stdout.matchAll(/^\s*(\S+) => not found/gm)].map((match) => match[1] ?? '');
    if (result.status !== 0 && missing.length === 0) throw new Error(`ldd ${file} failed (exit ${result.status}): ${result.stderr.trim()}`);
    if (missing.length > 0) unresolved.push({ file, missing });
  }
  return unresolved;
}

/** Result of {@link checkGpuBuildLinks}. */
export interface GpuLinkCheck {
  /** How many shared objects `ldd` checked. */
  checked: number;
  /** The objects that need the CUDA driver library, which only a driver host provides. */
  needDriver: string[];
}

/**
 * Checks with `ldd` that every shared object of a gpu build resolves its dependencies through the
 * build's own layout, except {@link CUDA_DRIVER_LIBRARY} when `driverPresent` is false. This is how
 * a build is verified on a machine that has no NVIDIA driver and so cannot use the GPU engine.
 * @throws naming every object and soname that does not resolve.
 */
export function checkGpuBuildLinks(buildDir: string, driverPresent: boolean, env: NodeJS.ProcessEnv = process.env): GpuLinkCheck {
  const files = nativeBuildSharedObjects(buildDir);
  const unresolved = unresolvedSharedLibraries(files, env);
  const unexpected = unresolved
    .map(({ file, missing }) => ({ file, missing: missing.filter((name) => driverPresent || name !== CUDA_DRIVER_LIBRARY) }))
    .filter(({ missing }) => missing.length > 0);
  if (unexpected.length > 0) {
    throw new Error(`the gpu build in ${buildDir} has unresolved libraries: ${unexpected.map(({ file, missing }) => `${file} needs ${missing.join(', ')}`).join('; ')}`);
  }
  return { checked: files.length, needDriver: unresolved.filter(({ missing }) => missing.includes(CUDA_DRIVER_LIBRARY)).map(({ file }) => file) };
}
