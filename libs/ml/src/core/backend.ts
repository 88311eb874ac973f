import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
// tfjs-layers' node bundle registers every op gradient; tfjs-core's node bundle registers none.
import '@tensorflow/tfjs-layers';
import { BACKEND_PREFERENCES, type BackendPreference } from '@detl/config';
import { BACKEND_ENV_VARIABLE, checkInstalledNativeBuild, nativeBackendProblem as nativeBuildProblem, nvidiaDriverProblem, type NativeVariant } from '@detl/native-tensorflow';
import { installBatchNormGradient } from './batch-norm-gradient';
import { installNativeTrainingKernels } from './native-training-kernels';
import { fixCpuTransformKernel, registerTensorflowTransformKernel } from './transform-kernels';
import { registerWasmConvGradients } from './wasm-conv-gradients';

// Backend preference: the experiment config's `runtime.backend` values.
export type { BackendPreference };

/** Environment variable that overrides any preference passed in code. */
export { BACKEND_ENV_VARIABLE };

/** An explicitly requested backend cannot run in this process; no retry changes that. */
export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
}

/** A backend that was tried and could not be used, for the run record. */
export interface BackendAttempt {
  preference: Exclude<BackendPreference, 'auto'>;
  error: string;
}

/**
 * Why a native backend asked for explicitly cannot start on this machine, checked without loading
 * it; null when it can, or for the other backends.
 */
export function nativeBackendProblem(preference: BackendPreference): string | null {
  return nativeBuildProblem(preference);
}

/** Threads one training process computes with. */
export interface BackendThreads {
  /** Threads inside one kernel (TensorFlow's intra-op pool; 1 on wasm and cpu). */
  intraOp: number;
  /** Kernels run at once (TensorFlow's inter-op pool; 1 on wasm and cpu). */
  interOp: number;
}

/** Which backend runs the tensors, and what detl did to it. */
export interface BackendInfo {
  /** tfjs backend name now active (`tensorflow`, `wasm` or `cpu`). */
  backend: string;
  /** What was asked for, after the environment override. */
  preference: BackendPreference;
  /** Who asked: the `DETL_TF_BACKEND` environment variable or the caller (the config's `runtime.backend`). */
  chosenBy: 'environment' | 'config';
  /** TensorFlow's version on the native backends, null elsewhere. */
  tensorflowVersion: string | null;
  /** Whether TensorFlow runs on a GPU (native GPU build with a visible device). */
  gpu: boolean;
  /** Threads this process computes with. */
  threads: BackendThreads;
  /** Kernels detl registered on that backend (the wasm conv gradients, the native Transform), empty otherwise. */
  registeredKernels: string[];
  /** Backends tried before the chosen one and why they failed (auto only). */
  fallbacks: BackendAttempt[];
  /** Op gradients detl replaced with faster equivalents (any backend). */
  replacedGradients: string[];
}

const NODE_PACKAGES = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
} as const;

const NATIVE_VARIANTS: Record<keyof typeof NODE_PACKAGES, NativeVariant> = { 'tensorflow-gpu': 'gpu', tensorflow: 'cpu' };

/** TensorFlow's own variables for its thread pools, read once when the native backend starts. */
export const TENSORFLOW_THREAD_VARIABLES = { intraOp: 'TF_NUM_INTRAOP_THREADS', interOp: 'TF_NUM_INTEROP_THREADS' } as const;

/** What a run record keeps of the backend a training used. */
export interface TrainingRuntime {
  backend: string;
  tensorflowVersion: string | null;
  gpu: boolean;
  intraOpThreads: number;
  interOpThreads: number;
}

/** The part of {@link BackendInfo} a training attempt records. */
export function trainingRuntimeOf(info: BackendInfo): TrainingRuntime {
  return { backend: info.backend, tensorflowVersion: info.tensorflowVersion, gpu: info.gpu, intraOpThreads: info.threads.intraOp, interOpThreads: info.threads.interOp };
}

/** Options of {@link initBackend}. */
export interface InitBackendOptions {
  /**
   * Threads for TensorFlow's intra-op pool on the native backends (inter-op gets 1, since a
   * training step is a chain of dependent kernels). Applied only if TensorFlow has not started
   * in this process yet and the environment does not already set them; default: every core.
   */
  threads?: number;
}

let current: { preference: BackendPreference; info: Promise<BackendInfo> } | null = null;
let wasmKernels: string[] = [];
let nativeThreads: BackendThreads | null = null;

function resolvePreference(preference: BackendPreference): BackendPreference {
  const fromEnv = process.env[BACKEND_ENV_VARIABLE]?.trim();
  if (!fromEnv) return preference;
  if (!(BACKEND_PREFERENCES as readonly string[]).includes(fromEnv)) {
    throw new Error(`${BACKEND_ENV_VARIABLE}=${fromEnv} is not a backend; expected one of ${BACKEND_PREFERENCES.join(', ')}`);
  }
  return fromEnv as BackendPreference;
}

function positiveIntegerFromEnv(name: string): number | null {
  const value = process.env[name];
  if (value === undefined || value.trim() === '') return null;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${name}=${value} is not a positive integer`);
  return parsed;
}

/** Fixes TensorFlow's thread pools before its context exists; later calls cannot change them. */
function applyNativeThreads(threads: number | undefined): BackendThreads {
  if (nativeThreads) return nativeThreads;
  const intraOp = positiveIntegerFromEnv(TENSORFLOW_THREAD_VARIABLES.intraOp) ?? threads ?? os.availableParallelism();
  const interOp = positiveIntegerFromEnv(TENSORFLOW_THREAD_VARIABLES.interOp) ?? 1;
  process.env[TENSORFLOW_THREAD_VARIABLES.intraOp] = String(intraOp);
  process.env[TENSORFLOW_THREAD_VARIABLES.interOp] = String(interOp);
  // TensorFlow's start-up banner (CPU feature notes) would otherwise go to every training log.
  process.env['TF_CPP_MIN_LOG_LEVEL'] ??= '2';
  nativeThreads = { intraOp, interOp };
  return nativeThreads;
}

interface NativeBinding {
  TF_Version?: string;
  isUsingGpuDevice?: () => boolean;
}

function nativeBinding(): NativeBinding {
  return (tf.backend() as unknown as { binding?: NativeBinding }).binding ?? {};
}

async function tryNode(kind: keyof typeof NODE_PACKAGES, threads: number | undefined): Promise<void> {
  const name = NODE_PACKAGES[kind];
  const driverProblem = kind === 'tensorflow-gpu' ? nvidiaDriverProblem() : null;
  if (driverProblem) throw new Error(`${name} not tried: ${driverProblem}`);
  // A truncated library or a binding of another Node would fail inside dlopen, or worse; the build's
  // own record is checked first so such a cache is reported, never loaded.
  const build = checkInstalledNativeBuild(NATIVE_VARIANTS[kind]);
  if (!build.ok) throw new Error(`${name} is not usable: ${build.reason}`);
  applyNativeThreads(threads);
  // A variable specifier keeps bundlers and tsc from resolving the optional package at build time.
  const specifier: string = name;
  try {
    await import(specifier);
  } catch (error) {
    throw new Error(`${name} could not be loaded: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${name} loaded but the 'tensorflow' backend did not initialise`);
  if (kind === 'tensorflow-gpu' && !nativeBinding().isUsingGpuDevice?.()) {
    throw new Error(`${name} loaded but TensorFlow sees no GPU (no NVIDIA driver, or no CUDA device visible)`);
  }
}

async function useWasm(): Promise<string[]> {
  if (!(await tf.setBackend('wasm'))) throw new Error("the 'wasm' backend did not initialise");
  await tf.ready();
  const added = registerWasmConvGradients();
  if (added.length > 0) wasmKernels = added;
  return wasmKernels;
}

function useNative(): string[] {
  registerTensorflowTransformKernel();
  return [tf.Transform, ...installNativeTrainingKernels()];
}

async function initialise(preference: BackendPreference, chosenBy: BackendInfo['chosenBy'], options: InitBackendOptions): Promise<BackendInfo> {
  const fallbacks: BackendAttempt[] = [];
  installBatchNormGradient();
  // The cpu kernels also serve as references in tests after a switch of backend, so fix it whatever runs.
  fixCpuTransformKernel();
  const done = (registeredKernels: string[]): BackendInfo => {
    const backend = tf.getBackend();
    const native = backend === 'tensorflow';
    return {
      backend,
      preference,
      chosenBy,
      tensorflowVersion: native ? (nativeBinding().TF_Version ?? null) : null,
      gpu: native && Boolean(nativeBinding().isUsingGpuDevice?.()),
      threads: native && nativeThreads ? nativeThreads : { intraOp: 1, interOp: 1 },
      registeredKernels,
      fallbacks,
      replacedGradients: ['FusedBatchNorm'],
    };
  };
  switch (preference) {
    case 'tensorflow-gpu':
    case 'tensorflow':
      try {
        await tryNode(preference, options.threads);
      } catch (error) {
        throw new BackendUnavailableError(`runtime.backend=${preference}: ${error instanceof Error ? error.message : String(error)}`);
      }
      return done(useNative());
    case 'wasm':
      return done(await useWasm());
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error("the 'cpu' backend did not initialise");
      return done([tf.Transform]);
    case 'auto':
      for (const kind of ['tensorflow-gpu', 'tensorflow'] as const) {
        try {
          await tryNode(kind, options.threads);
          return done(useNative());
        } catch (error) {
          fallbacks.push({ preference: kind, error: error instanceof Error ? error.message : String(error) });
        }
      }
      return done(await useWasm());
  }
}

/**
 * Chooses the tfjs backend once per process: `auto` tries `@tensorflow/tfjs-node-gpu`, then
 * `@tensorflow/tfjs-node` (optional dependencies whose native install often fails; a failed load
 * falls through and is listed in `fallbacks`), then wasm. `DETL_TF_BACKEND` overrides the argument.
 * A native package is loaded only when its detl-built binding passes the cache check of
 * `@detl/native-tensorflow`; its thread pools are fixed first ({@link InitBackendOptions.threads}).
 * On wasm the conv gradient kernels of {@link registerWasmConvGradients} are installed, on the
 * native backends the `Transform` kernel of {@link registerTensorflowTransformKernel}; on every
 * backend the batch-norm gradient of {@link installBatchNormGradient}.
 *
 * Idempotent: calling again with the same (resolved) preference returns the first result; a
 * different one switches backend.
 * @throws when an explicitly requested backend cannot be used (only `auto` falls back).
 */
export async function initBackend(preference: BackendPreference = 'auto', options: InitBackendOptions = {}): Promise<BackendInfo> {
  if (!BACKEND_PREFERENCES.includes(preference)) {
    throw new Error(`unknown backend '${String(preference)}'; expected one of ${BACKEND_PREFERENCES.join(', ')}`);
  }
  const resolved = resolvePreference(preference);
  if (current && current.preference === resolved) return current.info;
  const chosenBy = process.env[BACKEND_ENV_VARIABLE]?.trim() ? 'environment' : 'config';
  const info = initialise(resolved, chosenBy, options);
  current = { preference: resolved, info };
  try {
    return await info;
  } catch (error) {
    current = null;
    throw error;
  }
}
