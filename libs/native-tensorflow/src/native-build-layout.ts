import { createRequire } from 'node:module';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';

/**
 * The two native flavours: `cpu` builds tfjs-node's binding against the `tensorflow-cpu` wheel,
 * `gpu` builds tfjs-node-gpu's against the `tensorflow` wheel with CUDA 12 from pip's `nvidia-*-cu12`.
 */
export type NativeVariant = 'cpu' | 'gpu';

/** TensorFlow release whose C API the binding is compiled against (the PyPI wheels of that version). */
export const TENSORFLOW_VERSION = '2.21.0';

/** N-API version the binding is built for; tfjs-node's loader looks in `lib/napi-v<n>`. */
export const NAPI_BUILD_VERSION = 8;

/** PyPI wheel that carries the C libraries of each variant. */
export const TENSORFLOW_WHEEL: Record<NativeVariant, string> = {
  cpu: 'tensorflow-cpu',
  gpu: 'tensorflow',
};

/** npm package that loads the binding of each variant. */
export const TFJS_NODE_PACKAGE: Record<NativeVariant, string> = {
  cpu: '@tensorflow/tfjs-node',
  gpu: '@tensorflow/tfjs-node-gpu',
};

/** Name of the file that ties an installed package to the cache entry it was restored from. */
export const INSTALLED_MARKER = 'detl-native-build.json';

const STAMP_FILE = 'stamp.json';

/** What a finished cache entry records about itself; written last, so its presence means complete. */
export const nativeBuildStampSchema = z.strictObject({
  key: z.string(),
  variant: z.enum(['cpu', 'gpu']),
  tfjsVersion: z.string(),
  tensorflowVersion: z.string(),
  nodeAbi: z.string(),
  napiVersion: z.number().int(),
  /** Size in bytes of every regular file of the entry (relative path → size), to detect truncation. */
  files: z.record(z.string(), z.number().int().nonnegative()),
  builtAt: z.string(),
  buildSeconds: z.number().nonnegative(),
});

/** A cache entry's stamp. */
export type NativeBuildStamp = z.infer<typeof nativeBuildStampSchema>;

/** Folder that holds every cached tool build (shared with `tools/ensure-binaries.sh`). */
export function toolsCacheDirectory(env: NodeJS.ProcessEnv = process.env): string {
  return env['DETL_TOOLS_DIR'] ?? join(homedir(), '.cache', 'detl-tools');
}

/** Folder of one variant's npm package in this checkout's node_modules, or null when npm did not install it. */
export function tfjsNodePackageDirectory(variant: NativeVariant): string | null {
  const require = createRequire(import.meta.url);
  try {
    return dirname(require.resolve(`${TFJS_NODE_PACKAGE[variant]}/package.json`));
  } catch {
    return null;
  }
}

/** Version of the installed tfjs-node package of a variant, or null when it is not installed. */
export function tfjsNodeVersion(variant: NativeVariant): string | null {
  const dir = tfjsNodePackageDirectory(variant);
  if (!dir) return null;
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * Cache key of a build: everything the binary depends on. The binding is N-API, so the Node ABI
 * would not strictly matter; it is in the key anyway so a Node upgrade can never load a stale build.
 */
export function nativeBuildKey(variant: NativeVariant, tfjsVersion: string): string {
  return `tfjs-node-${tfjsVersion}_tf-${TENSORFLOW_VERSION}_abi${process.versions.modules}_napi${NAPI_BUILD_VERSION}_${variant}`;
}

/** Where the build of a key lives. */
export function nativeBuildDirectory(key: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(toolsCacheDirectory(env), 'tfjs-native', key);
}

/** Relative path of the compiled binding inside a build folder and inside the npm package (same layout). */
export const BINDING_PATH = join('lib', `napi-v${NAPI_BUILD_VERSION}`, 'tfjs_binding.node');

/** Result of checking a build folder or an installed package. */
export type NativeBuildCheck = { ok: true; stamp: NativeBuildStamp; directory: string } | { ok: false; reason: string };

/** Reads and verifies a build folder: stamp present and parseable, same Node ABI, no file missing or truncated. */
export function checkNativeBuild(directory: string): NativeBuildCheck {
  const stampPath = join(directory, STAMP_FILE);
  if (!existsSync(stampPath)) return { ok: false, reason: `no finished build in ${directory}` };
  let stamp: NativeBuildStamp;
  try {
    stamp = nativeBuildStampSchema.parse(JSON.parse(readFileSync(stampPath, 'utf8')));
  } catch (error) {
    return { ok: false, reason: `${stampPath} is unreadable (${error instanceof Error ? error.message.split('\n')[0] : String(error)})` };
  }
  if (stamp.nodeAbi !== process.versions.modules) {
    return { ok: false, reason: `${directory} was built for Node ABI ${stamp.nodeAbi}, this Node is ABI ${process.versions.modules}` };
  }
  for (const [relative, size] of Object.entries(stamp.files)) {
    const path = join(directory, relative);
    let actual: number;
    try {
      actual = statSync(path).size;
    } catch {
      return { ok: false, reason: `${path} is missing` };
    }
    if (actual !== size) return { ok: false, reason: `${path} has ${actual} bytes, the build recorded ${size} (truncated or replaced)` };
  }
  return { ok: true, stamp, directory };
}

/** Writes the stamp of a finished build folder. */
export function stampPath(directory: string): string {
  return join(directory, STAMP_FILE);
}

/**
 * Checks the build a variant's npm package is wired to: its marker names a cache entry, the
 * package's binding is that entry's, and the entry passes {@link checkNativeBuild}.
 */
export function checkInstalledNativeBuild(variant: NativeVariant): NativeBuildCheck {
  const packageDir = tfjsNodePackageDirectory(variant);
  if (!packageDir) return { ok: false, reason: `${TFJS_NODE_PACKAGE[variant]} is not installed in node_modules` };
  const marker = join(packageDir, INSTALLED_MARKER);
  if (!existsSync(marker)) return { ok: false, reason: `${TFJS_NODE_PACKAGE[variant]} has no detl-built binding (run: npm run setup:native${variant === 'gpu' ? ' -- --gpu' : ''})` };
  let buildDir: string;
  try {
    buildDir = z.strictObject({ directory: z.string() }).parse(JSON.parse(readFileSync(marker, 'utf8'))).directory;
  } catch (error) {
    return { ok: false, reason: `${marker} is unreadable (${error instanceof Error ? error.message.split('\n')[0] : String(error)})` };
  }
  const check = checkNativeBuild(buildDir);
  if (!check.ok) return check;
  const binding = join(packageDir, BINDING_PATH);
  try {
    if (realpathSync(binding) !== realpathSync(join(buildDir, BINDING_PATH))) {
      return { ok: false, reason: `${binding} is not the binding of ${buildDir}` };
    }
  } catch {
    return { ok: false, reason: `${binding} is missing` };
  }
  return check;
}
