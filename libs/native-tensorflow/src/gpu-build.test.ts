import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { NativeSetupUnavailableError, requirePythonWithPip } from './build-native-binding';
import { ensureNativeTensorflow, probeNativeBinding, type NativeSetupOutcome } from './ensure-native-tensorflow';
import { CUDA_DRIVER_LIBRARY, findCudaDriver, gpuLibraryDirectories, gpuRuntimeEnvironment, nativeBuildSharedObjects, unresolvedSharedLibraries } from './gpu-runtime';
import { BINDING_PATH, TENSORFLOW_VERSION } from './native-build-layout';

// Builds (or reuses from ~/.cache/detl-tools) the gpu binding against the tensorflow wheel and the
// CUDA 12 wheels of its and-cuda extra, and checks it without a GPU: every library resolves through
// the build's own layout but the driver's libcuda.so.1. On a clean machine this downloads ~3.4 GB
// through pip (572 MB tensorflow + 2.8 GB nvidia-*-cu12) and unpacks 5.4 GB; measured
// 3 minutes on a 2-core machine. `install: false` leaves node_modules alone, so processes of
// other tests keep loading the engines they loaded before.
const python = process.env['DETL_PYTHON'] ?? 'python3';
let pythonMissing: string | null = null;
try {
  requirePythonWithPip(python);
} catch (error) {
  if (!(error instanceof NativeSetupUnavailableError)) throw error;
  pythonMissing = error.message;
}
if (pythonMissing) console.warn(`skipping the gpu build test: ${pythonMissing}`);

const BUILD_TIMEOUT_MS = 45 * 60_000;

// Calls TensorFlow's own CUDA library loader (tsl::internal::CachedDsoLoader in
// libtensorflow_framework.so.2, TF 2.21 symbols) through ctypes, then reports from /proc/self/maps
// which libraries got mapped. The getters return absl::StatusOr by hidden pointer, hence the buffer.
const DSO_LOADER_SCRIPT = `
import ctypes, sys, json
framework = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
for symbol in sys.argv[2:]:
    getter = getattr(framework, symbol)
    getter.restype = None
    getter.argtypes = [ctypes.c_void_p]
    getter(ctypes.create_string_buffer(256))
mapped = sorted({line.split()[5] for line in open('/proc/self/maps') if len(line.split()) >= 6 and '/nvidia/' in line.split()[5]})
print(json.dumps(mapped))
`;
/** Getter symbol → soname it loads; the CUDA libraries TensorFlow opens at run time. */
const DSO_GETTERS: Record<string, string> = {
  _ZN3tsl8internal15CachedDsoLoader23GetCudaRuntimeDsoHandleEv: 'libcudart.so.12',
  _ZN3tsl8internal15CachedDsoLoader17GetCudnnDsoHandleEv: 'libcudnn.so.9',
  _ZN3tsl8internal15CachedDsoLoader18GetCublasDsoHandleEv: 'libcublas.so.12',
  _ZN3tsl8internal15CachedDsoLoader17GetCufftDsoHandleEv: 'libcufft.so.11',
  _ZN3tsl8internal15CachedDsoLoader20GetCusparseDsoHandleEv: 'libcusparse.so.12',
  _ZN3tsl8internal15CachedDsoLoader20GetCusolverDsoHandleEv: 'libcusolver.so.11',
  _ZN3tsl8internal15CachedDsoLoader17GetCuptiDsoHandleEv: 'libcupti.so.12',
  _ZN3tsl8internal9DsoLoader16GetNcclDsoHandleEv: 'libnccl.so.2',
};

function loadedByTensorflow(directory: string, env: NodeJS.ProcessEnv): string[] {
  const result = spawnSync(python, ['-c', DSO_LOADER_SCRIPT, join(directory, 'deps', 'lib', 'libtensorflow_framework.so.2'), ...Object.keys(DSO_GETTERS)], {
    encoding: 'utf8',
    env: { ...env, TF_CPP_MIN_LOG_LEVEL: '3' },
  });
  expect(result.status, result.stderr).toBe(0);
  return (JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '[]') as string[]).map((path) => basename(path));
}

describe.skipIf(pythonMissing !== null || process.platform !== 'linux' || process.arch !== 'x64')('gpu build (tensorflow 2.21 + CUDA 12 wheels)', () => {
  let outcome: NativeSetupOutcome;
  let directory = '';
  const driverPresent = findCudaDriver() !== null;

  beforeAll(async () => {
    const started = Date.now();
    outcome = await ensureNativeTensorflow({ variant: 'gpu', install: false, log: (line) => console.log(`native TensorFlow (gpu): ${line}`) });
    console.log(`gpu build ${outcome.status === 'ready' ? outcome.how : outcome.status} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    if (outcome.status === 'ready') directory = outcome.directory;
  }, BUILD_TIMEOUT_MS);

  it('is ready', () => {
    expect(outcome).toMatchObject({ status: 'ready', tensorflowVersion: TENSORFLOW_VERSION });
  });

  it('unpacked the CUDA 12 / cuDNN 9 wheels beside deps/lib, readable by all, ptxas executable', () => {
    const packages = gpuLibraryDirectories(directory).map((dir) => basename(dirname(dir)));
    expect(packages).toEqual(expect.arrayContaining(['cublas', 'cuda_cupti', 'cuda_runtime', 'cudnn', 'cufft', 'cusolver', 'cusparse', 'nccl', 'nvjitlink']));
    expect(statSync(join(directory, 'deps', 'nvidia', 'cudnn', 'lib', 'libcudnn.so.9')).isFile()).toBe(true);
    // Executable and readable for every user: images build as root and run the worker as another.
    expect(statSync(join(directory, 'deps', 'nvidia', 'cuda_nvcc', 'bin', 'ptxas')).mode & 0o111).toBe(0o111);
    expect(statSync(directory).mode & 0o005).toBe(0o005);
  });

  it(`resolves every library of the binding and under deps/ through RUNPATH, except ${CUDA_DRIVER_LIBRARY}`, () => {
    const files = nativeBuildSharedObjects(directory);
    expect(files).toContain(join(directory, BINDING_PATH));
    expect(files.length).toBeGreaterThan(30);
    const unresolved = unresolvedSharedLibraries(files);
    expect(unresolved.filter(({ missing }) => missing.some((name) => name !== CUDA_DRIVER_LIBRARY))).toEqual([]);
    // Without a driver, ldd must actually have noticed the missing one (cuDNN's runtime-compiled engines link it).
    if (!driverPresent) expect(unresolved.map(({ file }) => basename(file))).toContain('libcudnn_engines_runtime_compiled.so.9');
  });

  it('lets TensorFlow load every CUDA library it dlopens once LD_LIBRARY_PATH is set, and cuSOLVER only then', () => {
    const all = Object.values(DSO_GETTERS);
    expect(loadedByTensorflow(directory, { ...process.env, ...gpuRuntimeEnvironment(directory, {}) })).toEqual(expect.arrayContaining(all));
    // Why gpuRuntimeEnvironment exists: libtensorflow_framework.so.2's RUNPATH lacks cusolver.
    // (A host with a system-wide CUDA in the ld.so cache finds it there instead.)
    const viaRunpathOnly = loadedByTensorflow(directory, { ...process.env, LD_LIBRARY_PATH: '' });
    const systemCusolver = spawnSync('sh', ['-c', 'ldconfig -p 2>/dev/null || /sbin/ldconfig -p'], { encoding: 'utf8' }).stdout.includes('libcusolver.so.11 ');
    expect(all.filter((name) => !viaRunpathOnly.includes(name))).toEqual(systemCusolver ? [] : ['libcusolver.so.11']);
  });

  it("matches the GPU worker image's LD_LIBRARY_PATH, which names the same folders through node_modules", () => {
    const dockerfile = readFileSync(fileURLToPath(new URL('../../../infra/gpu-worker.Dockerfile', import.meta.url)), 'utf8');
    const inImage = (/LD_LIBRARY_PATH=(\S+)/.exec(dockerfile)?.[1] ?? '').split(':').filter((entry) => entry.startsWith('/app/node_modules/'));
    const prefix = '/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/';
    expect(inImage).toEqual(gpuLibraryDirectories(directory).map((dir) => `${prefix}${basename(dirname(dir))}/lib`));
  });

  it('loads in a fresh process (on CPU when there is no driver)', () => {
    const probe = probeNativeBinding(join(directory, BINDING_PATH), { ...process.env, ...gpuRuntimeEnvironment(directory) });
    expect(probe.tensorflowVersion).toBe(TENSORFLOW_VERSION);
    if (!driverPresent) expect(probe.gpu).toBe(false);
  });
});
