import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { createRequire } from 'node:module';
import {
  BINDING_PATH,
  NAPI_BUILD_VERSION,
  TENSORFLOW_VERSION,
  TENSORFLOW_WHEEL,
  nativeBuildDirectory,
  nativeBuildKey,
  stampPath,
  tfjsNodePackageDirectory,
  tfjsNodeVersion,
  toolsCacheDirectory,
  type NativeBuildStamp,
  type NativeVariant,
} from './native-build-layout';

/**
 * The native engine cannot be built on this machine for a reason the user fixes outside detl
 * (no Python with pip, another platform, the npm package absent); the wasm backend still runs.
 */
export class NativeSetupUnavailableError extends Error {
  override readonly name = 'NativeSetupUnavailableError';
}

/** Dependencies of a build, injectable so tests can watch the steps. */
export interface BuildNativeBindingOptions {
  variant: NativeVariant;
  /** Progress lines for the user (one per step, with elapsed time). */
  log: (line: string) => void;
  /** Python interpreter with pip; default `DETL_PYTHON` or `python3`. */
  python?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Newest glibc the wheels may need: TensorFlow's own wheel is tagged `manylinux_2_27`, so a host that
 * runs it runs the rest too.
 */
const MAX_GLIBC_MINOR = 27;

/**
 * The wheels are fetched for this interpreter tag and platform, so any local Python ≥ 3.9 can fetch
 * them. Every manylinux tag up to {@link MAX_GLIBC_MINOR} is listed because pip does not widen an
 * explicit `--platform manylinux_2_27` to older tags, and the CUDA wheels carry older ones (e.g.
 * nvidia-cuda-cupti-cu12 is `manylinux2014`, nvidia-nccl-cu12 `manylinux_2_18`).
 */
const WHEEL_TARGET = [
  '--only-binary=:all:',
  ...['manylinux2014_x86_64', ...Array.from({ length: MAX_GLIBC_MINOR - 16 }, (_, i) => `manylinux_2_${MAX_GLIBC_MINOR - i}_x86_64`)].flatMap((tag) => ['--platform', tag]),
  '--python-version',
  '3.11',
  '--implementation',
  'cp',
  '--abi',
  'cp311',
];

/** Python snippets, passed as `-c`, so no script file has to ship beside the wheel. */
const PYTHON_EXTRACT = `
import sys, zipfile, os, shutil
# argv: wheel, the member prefix to extract, the leading part of it to strip, destination folder
wheel, prefix, strip, dest = sys.argv[1:5]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        target = os.path.join(dest, info.filename[len(strip):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, 'wb') as out:
            shutil.copyfileobj(src, out, 1 << 20)
        # Keep executables executable (nvidia-cuda-nvcc's ptxas, which XLA runs), for every user:
        # the wheels mark them 0744, but a Docker image builds as root and runs as another user.
        mode = (info.external_attr >> 16) & 0o777
        if mode & 0o111:
            os.chmod(target, 0o755)
`;
const PYTHON_CUDA_REQUIREMENTS = `
import sys, zipfile, re
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
    for line in z.read(meta).decode().splitlines():
        m = re.match(r'Requires-Dist: *([^;]+?) *; *extra *== *"and-cuda"', line)
        if m and m.group(1).replace(' ', '').startswith('nvidia-'):
            print(m.group(1).replace(' ', ''))
`;

function pythonCommand(options: BuildNativeBindingOptions): string {
  return options.python ?? options.env?.['DETL_PYTHON'] ?? process.env['DETL_PYTHON'] ?? 'python3';
}

/** Checks for Python ≥ 3.9 with pip; throws {@link NativeSetupUnavailableError} naming what is missing. */
export function requirePythonWithPip(python: string): void {
  const version = spawnSync(python, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) throw new NativeSetupUnavailableError(`no Python found (${python}); install Python ≥ 3.9 with pip or set DETL_PYTHON`);
  const [major, minor] = version.stdout.trim().split('.').map(Number);
  if ((major ?? 0) < 3 || ((major ?? 0) === 3 && (minor ?? 0) < 9)) throw new NativeSetupUnavailableError(`${python} is Python ${version.stdout.trim()}; the native engine needs Python ≥ 3.9 with pip`);
  const pip = spawnSync(python, ['-m', 'pip', '--version'], { encoding: 'utf8' });
  if (pip.error || pip.status !== 0) throw new NativeSetupUnavailableError(`${python} has no pip (python3 -m pip failed); install pip to get the native engine`);
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; log: (line: string) => void; label: string }): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (error) => reject(new Error(`${options.label}: ${error.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolvePromise(output);
      else reject(new Error(`${options.label} failed (exit ${code}):\n${output.split('\n').slice(-25).join('\n')}`));
    });
  });
}

/** node-gyp: the project's own if installed, else the copy every npm bundles. */
function nodeGypScript(): string {
  const require = createRequire(import.meta.url);
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const bundled = resolve(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(bundled)) return bundled;
    throw new NativeSetupUnavailableError('node-gyp not found (neither in node_modules nor bundled with npm)');
  }
}

/** Node's own headers when the installation has them (Debian, nvm, the official tarballs), so node-gyp downloads nothing. */
function nodeHeadersDirectory(): string | null {
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

function listFiles(root: string): Record<string, number> {
  const files: Record<string, number> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) files[relative(root, path)] = lstatSync(path).size;
    }
  };
  walk(root);
  return files;
}

function elapsed(startedMs: number): string {
  return `${((Date.now() - startedMs) / 1000).toFixed(0)} s`;
}

/**
 * Downloads wheels into `wheelsDir` (pip skips those already there).
 * @returns the wheels pip chose, from its own report: with version ranges (the CUDA wheels) the folder
 * may also hold older picks, so it is not searched.
 */
async function downloadWheels(python: string, requirements: string[], wheelsDir: string, options: BuildNativeBindingOptions): Promise<string[]> {
  mkdirSync(wheelsDir, { recursive: true });
  const output = await run(python, ['-m', 'pip', 'download', '--no-deps', '--disable-pip-version-check', '--progress-bar', 'off', ...WHEEL_TARGET, '-d', wheelsDir, ...requirements], {
    log: options.log,
    label: `pip download ${requirements.join(' ')}`,
  });
  return [...output.matchAll(/^\s*(?:Saved|File was already downloaded) (.+\.whl)\s*$/gm)].map((match) => join(wheelsDir, basename(match[1] ?? '')));
}

function wheelFile(wheels: string[], distribution: string): string {
  const normalised = distribution.replace(/[-_.]+/g, '_').toLowerCase();
  const match = wheels.find((path) => basename(path).toLowerCase().startsWith(`${normalised}-`));
  if (!match) throw new Error(`pip reported success but named no wheel of ${distribution} (it named ${wheels.map((path) => basename(path)).join(', ') || 'none'})`);
  return match;
}

/**
 * Builds tfjs-node's N-API binding against the TensorFlow C API inside the PyPI wheel of the
 * variant, without any download but pip's: fetches the wheel (and for `gpu` the CUDA 12 wheels it
 * names under its `and-cuda` extra), unpacks the libraries in the layout `binding.gyp` expects,
 * compiles with node-gyp against the local Node headers, and moves the result into the cache
 * folder of {@link nativeBuildKey} in one rename, stamped last. Headers are dropped afterwards.
 * @returns the stamp of the new cache entry.
 * @throws {@link NativeSetupUnavailableError} when this machine cannot build it at all.
 */
export async function buildNativeBinding(options: BuildNativeBindingOptions): Promise<NativeBuildStamp> {
  const { variant, log } = options;
  const env = options.env ?? process.env;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new NativeSetupUnavailableError(`the native engine is built for linux-x64 only (this is ${process.platform}-${process.arch})`);
  }
  const packageDir = tfjsNodePackageDirectory(variant);
  const tfjsVersion = tfjsNodeVersion(variant);
  if (!packageDir || !tfjsVersion) {
    throw new NativeSetupUnavailableError(`@tensorflow/tfjs-node${variant === 'gpu' ? '-gpu' : ''} is not in node_modules (npm < 11 runs its failing install script and drops it; use npm ≥ 11)`);
  }
  const python = pythonCommand(options);
  requirePythonWithPip(python);
  const started = Date.now();
  const key = nativeBuildKey(variant, tfjsVersion);
  const cacheRoot = join(toolsCacheDirectory(env), 'tfjs-native');
  const wheelsDir = join(toolsCacheDirectory(env), 'wheels');
  mkdirSync(cacheRoot, { recursive: true });

  const wheelName = TENSORFLOW_WHEEL[variant];
  log(`downloading ${wheelName}==${TENSORFLOW_VERSION} through pip (${variant === 'cpu' ? '274 MB' : '572 MB, then 2.8 GB of CUDA 12 wheels; 5.4 GB unpacked'}, once)`);
  const tensorflowWheel = wheelFile(await downloadWheels(python, [`${wheelName}==${TENSORFLOW_VERSION}`], wheelsDir, options), wheelName);

  const staging = mkdtempSync(join(cacheRoot, `.build-${key}-`));
  try {
    const libDir = join(staging, 'deps', 'lib');
    const headersDir = join(staging, 'headers');
    log(`unpacking the TensorFlow C libraries and headers (${elapsed(started)})`);
    await run(python, ['-c', PYTHON_EXTRACT, tensorflowWheel, 'tensorflow/libtensorflow', 'tensorflow/', libDir], { log, label: 'unpacking the TensorFlow libraries' });
    await run(python, ['-c', PYTHON_EXTRACT, tensorflowWheel, 'tensorflow/include/', 'tensorflow/include/', headersDir], { log, label: 'unpacking the TensorFlow headers' });
    for (const [link, target] of [
      ['libtensorflow.so', 'libtensorflow_cc.so.2'],
      ['libtensorflow_framework.so', 'libtensorflow_framework.so.2'],
    ] as const) {
      if (!existsSync(join(libDir, target))) throw new Error(`${tensorflowWheel} has no tensorflow/${target}`);
      symlinkSync(target, join(libDir, link));
    }

    if (variant === 'gpu') {
      const requirements = (await run(python, ['-c', PYTHON_CUDA_REQUIREMENTS, tensorflowWheel], { log, label: 'reading the CUDA requirements' })).split('\n').filter(Boolean);
      if (requirements.length === 0) throw new Error(`${tensorflowWheel} names no nvidia-* packages under its and-cuda extra`);
      log(`downloading ${requirements.length} CUDA 12 wheels through pip (${elapsed(started)})`);
      const cudaWheels = await downloadWheels(python, requirements, wheelsDir, options);
      log(`unpacking the CUDA libraries (${elapsed(started)})`);
      // The wheel's libraries look for CUDA at $ORIGIN/../nvidia/<pkg>/lib, so deps/nvidia sits beside deps/lib.
      for (const requirement of requirements) {
        const name = requirement.split(/[=<>!~]/)[0] as string;
        await run(python, ['-c', PYTHON_EXTRACT, wheelFile(cudaWheels, name), 'nvidia/', 'nvidia/', join(staging, 'deps', 'nvidia')], { log, label: `unpacking ${name}` });
      }
    }

    log(`compiling the binding with node-gyp (${elapsed(started)})`);
    const source = join(staging, 'source');
    mkdirSync(join(source, 'deps'), { recursive: true });
    cpSync(join(packageDir, 'binding'), join(source, 'binding'), { recursive: true });
    cpSync(join(packageDir, 'binding.gyp'), join(source, 'binding.gyp'));
    symlinkSync(headersDir, join(source, 'deps', 'include'));
    symlinkSync(libDir, join(source, 'deps', 'lib'));
    const nodedir = nodeHeadersDirectory();
    await run(
      process.execPath,
      [
        nodeGypScript(),
        'rebuild',
        ...(nodedir ? [`--nodedir=${nodedir}`] : []),
        `--jobs=${Math.max(1, cpus().length)}`,
        '--module_name=tfjs_binding',
        `--module_path=${join(staging, dirname(BINDING_PATH))}`,
        `--napi_build_version=${NAPI_BUILD_VERSION}`,
      ],
      { cwd: source, env: { ...env, npm_config_loglevel: 'warn' }, log, label: 'node-gyp rebuild' },
    );
    rmSync(source, { recursive: true, force: true });
    rmSync(headersDir, { recursive: true, force: true });
    if (!existsSync(join(staging, BINDING_PATH))) throw new Error(`node-gyp finished without producing ${BINDING_PATH}`);

    const stamp: NativeBuildStamp = {
      key,
      variant,
      tfjsVersion,
      tensorflowVersion: TENSORFLOW_VERSION,
      nodeAbi: process.versions.modules,
      napiVersion: NAPI_BUILD_VERSION,
      files: listFiles(staging),
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - started) / 1000),
    };
    writeFileSync(stampPath(staging), `${JSON.stringify(stamp, null, 2)}\n`);
    // mkdtemp made the folder private (0700); a build made by root (a Docker image step) must stay
    // readable by the user that runs the worker.
    chmodSync(staging, 0o755);
    const finalDir = nativeBuildDirectory(key, env);
    rmSync(finalDir, { recursive: true, force: true });
    renameSync(staging, finalDir);
    log(`built ${finalDir} in ${elapsed(started)}`);
    return stamp;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
