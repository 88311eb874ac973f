import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildNativeBinding, NativeSetupUnavailableError } from './build-native-binding';
import { CUDA_DRIVER_LIBRARY, checkGpuBuildLinks, findCudaDriver, gpuRuntimeEnvironment } from './gpu-runtime';
import {
  BINDING_PATH,
  INSTALLED_MARKER,
  TFJS_NODE_PACKAGE,
  checkInstalledNativeBuild,
  checkNativeBuild,
  nativeBuildDirectory,
  nativeBuildKey,
  tfjsNodePackageDirectory,
  tfjsNodeVersion,
  toolsCacheDirectory,
  type NativeVariant,
} from './native-build-layout';

/** What {@link ensureNativeTensorflow} found or did. */
export type NativeSetupOutcome =
  | { status: 'ready'; how: 'installed' | 'restored' | 'cached' | 'built'; directory: string; tensorflowVersion: string }
  | { status: 'unavailable'; reason: string };

/** Options of {@link ensureNativeTensorflow}. */
export interface EnsureNativeTensorflowOptions {
  variant: NativeVariant;
  log: (line: string) => void;
  /** Rebuild even when a valid cache entry exists. */
  rebuild?: boolean;
  /**
   * Wire the package in node_modules to the build (default true). False only fills and verifies the
   * cache (`how: 'cached'` when it was already there): a test can then check a build without
   * changing which engine other processes of the checkout load.
   */
  install?: boolean;
  env?: NodeJS.ProcessEnv;
}

function replaceWithSymlink(target: string, path: string): void {
  try {
    lstatSync(path);
    rmSync(path, { recursive: true, force: true });
  } catch {
    // nothing there yet
  }
  mkdirSync(dirname(path), { recursive: true });
  symlinkSync(target, path);
}

/**
 * Wires a variant's npm package to a cache entry: `deps/` and the binding become links into the
 * entry, and a marker names it. Cheap, so it runs after every `npm ci` (which replaces the package).
 */
export function installNativeBuild(variant: NativeVariant, buildDir: string): void {
  const packageDir = tfjsNodePackageDirectory(variant);
  if (!packageDir) throw new NativeSetupUnavailableError(`${TFJS_NODE_PACKAGE[variant]} is not installed in node_modules`);
  replaceWithSymlink(join(buildDir, 'deps'), join(packageDir, 'deps'));
  replaceWithSymlink(join(buildDir, BINDING_PATH), join(packageDir, BINDING_PATH));
  writeFileSync(join(packageDir, INSTALLED_MARKER), `${JSON.stringify({ directory: buildDir })}\n`);
}

/** The cache entry a variant's package is wired to, from its marker; null when there is none. */
function linkedBuildDirectory(variant: NativeVariant): string | null {
  const packageDir = tfjsNodePackageDirectory(variant);
  if (!packageDir) return null;
  try {
    const marker = JSON.parse(readFileSync(join(packageDir, INSTALLED_MARKER), 'utf8')) as { directory?: unknown };
    return typeof marker.directory === 'string' ? marker.directory : null;
  } catch {
    return null;
  }
}

/** Removes the wiring of {@link installNativeBuild}, leaving the package as npm installed it. */
export function uninstallNativeBuild(variant: NativeVariant): void {
  const packageDir = tfjsNodePackageDirectory(variant);
  if (!packageDir) return;
  for (const path of [join(packageDir, INSTALLED_MARKER), join(packageDir, BINDING_PATH), join(packageDir, 'deps')]) rmSync(path, { recursive: true, force: true });
}

/** What loading the binding in a fresh process reported. */
export interface NativeProbe {
  tensorflowVersion: string;
  gpu: boolean;
}

const PROBE_SCRIPT = `
const binding = require(process.argv[1]);
process.stdout.write(JSON.stringify({ tensorflowVersion: binding.TF_Version, gpu: Boolean(binding.isUsingGpuDevice && binding.isUsingGpuDevice()) }));
`;

/**
 * Loads a binding in a child process (a broken library can abort the loading process, which must
 * not be the caller) and reads TensorFlow's version from it.
 * @throws with the child's last output lines when it cannot be loaded.
 */
export function probeNativeBinding(bindingPath: string, env: NodeJS.ProcessEnv = process.env): NativeProbe {
  const result = spawnSync(process.execPath, ['-e', PROBE_SCRIPT, bindingPath], { encoding: 'utf8', env: { ...env, TF_CPP_MIN_LOG_LEVEL: '2' }, timeout: 120_000 });
  if (result.status !== 0) {
    const output = `${result.stderr ?? ''}${result.error ? result.error.message : ''}`.trim().split('\n').slice(-3).join(' | ');
    throw new Error(`${bindingPath} does not load (${result.signal ? `signal ${result.signal}` : `exit ${result.status}`}): ${output}`);
  }
  return JSON.parse(result.stdout) as NativeProbe;
}

/**
 * Checks that a build folder is usable before the package is wired to it. The cpu build, and a gpu
 * build on a host with the NVIDIA driver, must load in a fresh process. Without the driver a gpu
 * build cannot be exercised here, so it is accepted when `ldd` resolves every library of it but
 * the driver's ({@link checkGpuBuildLinks}); loading is still tried and only reported.
 * @returns the probe, or null when a driver-less gpu build was verified by `ldd` alone.
 * @throws when the build is broken.
 */
function verifyNativeBuild(variant: NativeVariant, directory: string, env: NodeJS.ProcessEnv, driverPresent: boolean, log: (line: string) => void): NativeProbe | null {
  const bindingPath = join(directory, BINDING_PATH);
  if (variant === 'cpu') return probeNativeBinding(bindingPath, env);
  const links = checkGpuBuildLinks(directory, driverPresent, env);
  const probeEnv = { ...env, ...gpuRuntimeEnvironment(directory, env) };
  if (driverPresent) return probeNativeBinding(bindingPath, probeEnv);
  log(`ldd: all ${links.checked} libraries of the build resolve except ${CUDA_DRIVER_LIBRARY} (needed by ${links.needDriver.length})`);
  try {
    return probeNativeBinding(bindingPath, probeEnv);
  } catch (error) {
    log(`the binding does not load without the driver (expected here): ${error instanceof Error ? error.message : String(error)}`);
    return null;
  }
}

/** Serialises setups of the same cache (a CI step and a test, two terminals) with an exclusive lock folder. */
async function withCacheLock<T>(env: NodeJS.ProcessEnv, log: (line: string) => void, body: () => Promise<T>): Promise<T> {
  const root = join(toolsCacheDirectory(env), 'tfjs-native');
  mkdirSync(root, { recursive: true });
  const lock = join(root, '.lock');
  let announced = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(existsSync(join(lock, 'pid')) ? readFileSync(join(lock, 'pid'), 'utf8') : NaN);
      let alive = Number.isInteger(holder) && holder > 0;
      if (alive) {
        try {
          process.kill(holder, 0);
        } catch {
          alive = false;
        }
      }
      if (!alive) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (!announced) log(`waiting for another setup (pid ${holder}) to finish`);
      announced = true;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  try {
    return await body();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Makes the native engine of a variant usable from this checkout: keeps a valid installed build,
 * else restores the cached one, else builds it ({@link buildNativeBinding}); a cache entry that is
 * truncated, built for another Node ABI or fails to load is rebuilt, saying so. Machines that
 * cannot build it get `unavailable` with the reason (the wasm backend runs there). A gpu build on
 * a machine without the NVIDIA driver is verified with `ldd` instead of loading it (one log line
 * says so); processes that use a gpu build need {@link gpuRuntimeEnvironment} in their environment.
 */
export async function ensureNativeTensorflow(options: EnsureNativeTensorflowOptions): Promise<NativeSetupOutcome> {
  const { variant, log } = options;
  const env = options.env ?? process.env;
  const install = options.install ?? true;
  const tfjsVersion = tfjsNodeVersion(variant);
  if (!tfjsVersion) return { status: 'unavailable', reason: `${TFJS_NODE_PACKAGE[variant]} is not in node_modules` };
  const directory = nativeBuildDirectory(nativeBuildKey(variant, tfjsVersion), env);
  const driverPresent = variant === 'gpu' && findCudaDriver(env) !== null;
  if (variant === 'gpu' && !driverPresent) {
    log(`no NVIDIA driver on this machine (${CUDA_DRIVER_LIBRARY} not found by ldconfig -p): the GPU engine cannot load here, so builds are verified with ldd instead`);
  }
  try {
    return await withCacheLock(env, log, async () => {
      if (!options.rebuild) {
        const installed = install ? checkInstalledNativeBuild(variant) : null;
        if (installed?.ok && installed.directory === directory) {
          return { status: 'ready', how: 'installed', directory, tensorflowVersion: installed.stamp.tensorflowVersion } as const;
        }
        const cached = checkNativeBuild(directory);
        if (cached.ok) {
          try {
            verifyNativeBuild(variant, directory, env, driverPresent, log);
            if (!install) return { status: 'ready', how: 'cached', directory, tensorflowVersion: cached.stamp.tensorflowVersion } as const;
            installNativeBuild(variant, directory);
            return { status: 'ready', how: 'restored', directory, tensorflowVersion: cached.stamp.tensorflowVersion } as const;
          } catch (error) {
            log(`cached build fails its check, rebuilding: ${error instanceof Error ? error.message : String(error)}`);
          }
        } else if (existsSync(directory)) {
          log(`cached build is broken, rebuilding: ${cached.reason}`);
        }
      }
      // The build replaces the entry the package may link into; an installed package must not point
      // into a half-written folder meanwhile. A package wired to another entry keeps working if this
      // build cannot happen (no pip here, say).
      if (install && linkedBuildDirectory(variant) === directory) uninstallNativeBuild(variant);
      const stamp = await buildNativeBinding({ variant, log, env });
      const probe = verifyNativeBuild(variant, directory, env, driverPresent, log);
      if (probe) log(`the binding loads: TensorFlow ${probe.tensorflowVersion}${variant === 'gpu' ? (probe.gpu ? ' with a GPU' : ', no GPU device visible') : ''}`);
      if (install) installNativeBuild(variant, directory);
      return { status: 'ready', how: 'built', directory, tensorflowVersion: stamp.tensorflowVersion } as const;
    });
  } catch (error) {
    if (error instanceof NativeSetupUnavailableError) return { status: 'unavailable', reason: error.message };
    throw error;
  }
}
