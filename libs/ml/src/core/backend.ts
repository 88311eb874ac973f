import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
// tfjs-layers' node bundle registers every op gradient; tfjs-core's node bundle registers none.
import '@tensorflow/tfjs-layers';
import { installBatchNormGradient } from './batch-norm-gradient';
import { registerWasmConvGradients } from './wasm-conv-gradients';

/** Backend preference, as in the experiment config's `runtime.backend`. */
export type BackendPreference = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** Environment variable that overrides any preference passed in code. */
export const BACKEND_ENV_VARIABLE = 'DETL_TF_BACKEND';

const PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

/** A backend that was tried and could not be used, for the run record. */
export interface BackendAttempt {
  preference: Exclude<BackendPreference, 'auto'>;
  error: string;
}

/** Which backend runs the tensors, and what detl did to it. */
export interface BackendInfo {
  /** tfjs backend name now active (`tensorflow`, `wasm` or `cpu`). */
  backend: string;
  /** What was asked for, after the environment override. */
  preference: BackendPreference;
  /** Kernels detl registered on that backend (the wasm conv gradients), empty otherwise. */
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

let current: { preference: BackendPreference; info: Promise<BackendInfo> } | null = null;
let wasmKernels: string[] = [];

function resolvePreference(preference: BackendPreference): BackendPreference {
  const fromEnv = process.env[BACKEND_ENV_VARIABLE]?.trim();
  if (!fromEnv) return preference;
  if (!(PREFERENCES as readonly string[]).includes(fromEnv)) {
    throw new Error(`${BACKEND_ENV_VARIABLE}=${fromEnv} is not a backend; expected one of ${PREFERENCES.join(', ')}`);
  }
  return fromEnv as BackendPreference;
}

async function tryNode(kind: keyof typeof NODE_PACKAGES): Promise<void> {
  const name = NODE_PACKAGES[kind];
  // A variable specifier keeps bundlers and tsc from resolving the optional package at build time.
  const specifier: string = name;
  try {
    await import(specifier);
  } catch (error) {
    throw new Error(`${name} could not be loaded: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${name} loaded but the 'tensorflow' backend did not initialise`);
  if (kind === 'tensorflow-gpu' && !isGpuBuild()) {
    throw new Error(`${name} loaded but TensorFlow reports no CUDA build`);
  }
}

function isGpuBuild(): boolean {
  // tfjs-node-gpu and tfjs-node share the backend name; the binding knows which libtensorflow it has.
  const backend = tf.backend() as unknown as { binding?: { isUsingGpuDevice?: () => boolean } };
  return backend.binding?.isUsingGpuDevice?.() ?? true;
}

async function useWasm(): Promise<string[]> {
  if (!(await tf.setBackend('wasm'))) throw new Error("the 'wasm' backend did not initialise");
  await tf.ready();
  const added = registerWasmConvGradients();
  if (added.length > 0) wasmKernels = added;
  return wasmKernels;
}

async function initialise(preference: BackendPreference): Promise<BackendInfo> {
  const fallbacks: BackendAttempt[] = [];
  installBatchNormGradient();
  const done = (registeredKernels: string[]): BackendInfo => ({ backend: tf.getBackend(), preference, registeredKernels, fallbacks, replacedGradients: ['FusedBatchNorm'] });
  switch (preference) {
    case 'tensorflow-gpu':
    case 'tensorflow':
      await tryNode(preference);
      return done([]);
    case 'wasm':
      return done(await useWasm());
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error("the 'cpu' backend did not initialise");
      return done([]);
    case 'auto':
      for (const kind of ['tensorflow-gpu', 'tensorflow'] as const) {
        try {
          await tryNode(kind);
          return done([]);
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
 * On wasm the conv gradient kernels of {@link registerWasmConvGradients} are installed; on every
 * backend the batch-norm gradient of {@link installBatchNormGradient}.
 *
 * Idempotent: calling again with the same (resolved) preference returns the first result; a
 * different one switches backend.
 * @throws when an explicitly requested backend cannot be used (only `auto` falls back).
 */
export async function initBackend(preference: BackendPreference = 'auto'): Promise<BackendInfo> {
  if (!PREFERENCES.includes(preference)) {
    throw new Error(`unknown backend '${String(preference)}'; expected one of ${PREFERENCES.join(', ')}`);
  }
  const resolved = resolvePreference(preference);
  if (current && current.preference === resolved) return current.info;
  const info = initialise(resolved);
  current = { preference: resolved, info };
  try {
    return await info;
  } catch (error) {
    current = null;
    throw error;
  }
}
