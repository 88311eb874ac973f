import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildNativeBinding, NativeSetupUnavailableError } from './build-native-binding';
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
  | { status: 'ready'; how: 'installed' | 'restored' | 'built'; directory: string; tensorflowVersion: string }
  | { status: 'unavailable'; reason: string };

/** Options of {@link ensureNativeTensorflow}. */
export interface EnsureNativeTensorflowOptions {
  variant: NativeVariant;
  log: (line: string) => void;
  /** Rebuild even when a valid cache entry exists. */
  rebuild?: boolean;
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
 * cannot build it get `unavailable` with the reason (the wasm backend runs there).
 */
export async function ensureNativeTensorflow(options: EnsureNativeTensorflowOptions): Promise<NativeSetupOutcome> {
  const { variant, log } = options;
  const env = options.env ?? process.env;
  const tfjsVersion = tfjsNodeVersion(variant);
  if (!tfjsVersion) return { status: 'unavailable', reason: `${TFJS_NODE_PACKAGE[variant]} is not in node_modules` };
  const directory = nativeBuildDirectory(nativeBuildKey(variant, tfjsVersion), env);
  try {
    return await withCacheLock(env, log, async () => {
      if (!options.rebuild) {
        const installed = checkInstalledNativeBuild(variant);
        if (installed.ok && installed.directory === directory) {
          return { status: 'ready', how: 'installed', directory, tensorflowVersion: installed.stamp.tensorflowVersion } as const;
        }
        const cached = checkNativeBuild(directory);
        if (cached.ok) {
          try {
            probeNativeBinding(join(directory, BINDING_PATH), env);
            installNativeBuild(variant, directory);
            return { status: 'ready', how: 'restored', directory, tensorflowVersion: cached.stamp.tensorflowVersion } as const;
          } catch (error) {
            log(`cached build does not load, rebuilding: ${error instanceof Error ? error.message : String(error)}`);
          }
        } else if (existsSync(directory)) {
          log(`cached build is broken, rebuilding: ${cached.reason}`);
        }
      }
      uninstallNativeBuild(variant);
      const stamp = await buildNativeBinding({ variant, log, env });
      const probe = probeNativeBinding(join(directory, BINDING_PATH), env);
      log(`the binding loads: TensorFlow ${probe.tensorflowVersion}${probe.gpu ? ' with a GPU' : ''}`);
      installNativeBuild(variant, directory);
      return { status: 'ready', how: 'built', directory, tensorflowVersion: stamp.tensorflowVersion } as const;
    });
  } catch (error) {
    if (error instanceof NativeSetupUnavailableError) return { status: 'unavailable', reason: error.message };
    throw error;
  }
}
