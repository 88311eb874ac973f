import { spawnSync } from 'node:child_process';
import os from 'node:os';
import type * as Tf from '@tensorflow/tfjs-core';
import { BACKEND_ENV_VARIABLE, checkInstalledNativeBuild, TFJS_NODE_PACKAGE, type NativeVariant } from '@detl/native-tensorflow';
import type { BackendInfo } from '@detl/ml';
import { CliError } from '../cli-error';
import { configFlagValue } from '../config-options';

/** Flags of `detl doctor`. */
export interface DoctorFlags {
  backend?: string;
  threads?: string;
  json?: boolean;
}


/** State of one native build as `detl doctor` reports it. */
interface NativeBuildReport {
  variant: NativeVariant;
  package: string;
  ready: boolean;
  detail: string;
}

function nativeBuilds(): NativeBuildReport[] {
  return (['cpu', 'gpu'] as const).map((variant) => {
    const check = checkInstalledNativeBuild(variant);
    return check.ok
      ? { variant, package: TFJS_NODE_PACKAGE[variant], ready: true, detail: `TensorFlow ${check.stamp.tensorflowVersion}, built ${check.stamp.builtAt} in ${check.stamp.buildSeconds} s: ${check.directory}` }
      : { variant, package: TFJS_NODE_PACKAGE[variant], ready: false, detail: check.reason };
  });
}

/** Names of the NVIDIA GPUs the driver reports, empty without a driver. */
function gpuNames(): string[] {
  const result = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10_000 });
  return result.status === 0 ? result.stdout.split('\n').map((line) => line.trim()).filter(Boolean) : [];
}

/** One forward and backward conv step, so "ready" means the kernels training needs really run. */
function smokeTest(tf: typeof Tf): string {
  const started = performance.now();
  const loss = tf.tidy(() => {
    const x = tf.randomNormal([2, 16, 16, 1], 0, 1, 'float32', 1) as Tf.Tensor4D;
    const w = tf.variable(tf.randomNormal([3, 3, 1, 4], 0, 0.1, 'float32', 2) as Tf.Tensor4D);
    const grads = tf.variableGrads(() => tf.mean(tf.square(tf.conv2d(tf.image.transform(x, tf.tensor2d([[1, 0, 1, 0, 1, 0, 0, 0]]), 'bilinear', 'nearest'), w, 1, 'same'))) as Tf.Scalar);
    const value = grads.value.dataSync()[0];
    w.dispose();
    return value;
  });
  if (loss === undefined || !Number.isFinite(loss)) throw new CliError(`the ${tf.getBackend()} backend computed a non-finite loss in its self-test`);
  return `conv2d + gradient + transform ran in ${(performance.now() - started).toFixed(0)} ms`;
}

/**
 * `detl doctor`: which tfjs backend training would use here and why (the faster ones not taken,
 * with their reasons), TensorFlow's version, the devices, the threads, and the native builds.
 * Exit code 2 when the backend asked for (`--backend`, `DETL_TF_BACKEND`) cannot run.
 */
export async function doctorCommand(flags: DoctorFlags): Promise<void> {
  // Checked by the config schema's runtime.backend / runtime.threads, which these flags stand for.
  const preference = flags.backend === undefined ? 'auto' : configFlagValue('--backend', 'runtime.backend', flags.backend);
  const threads = flags.threads === undefined ? 'auto' : configFlagValue('--threads', 'runtime.threads', flags.threads, { numbersOnly: true });
  // tfjs loads only when a command needs it, so the other commands start fast.
  const { initBackend } = await import('@detl/ml');
  const tf = await import('@tensorflow/tfjs-core');
  let info: BackendInfo;
  try {
    info = await initBackend(preference, typeof threads === 'number' ? { threads } : {});
  } catch (error) {
    throw new CliError(`backend ${process.env[BACKEND_ENV_VARIABLE] ?? preference} cannot run here: ${error instanceof Error ? error.message : String(error)}`, 2);
  }
  const selfTest = smokeTest(tf);
  const builds = nativeBuilds();
  const gpus = info.gpu ? gpuNames() : [];
  const devices = ['CPU', ...(info.gpu ? (gpus.length > 0 ? gpus : ['GPU']) : [])];
  const report = {
    backend: info.backend,
    preference: info.preference,
    chosenBy: info.chosenBy === 'environment' ? `${BACKEND_ENV_VARIABLE}=${process.env[BACKEND_ENV_VARIABLE]}` : flags.backend ? `--backend ${flags.backend}` : 'default (auto)',
    tensorflowVersion: info.tensorflowVersion,
    devices,
    threads: info.threads,
    cores: os.availableParallelism(),
    notTaken: info.fallbacks,
    registeredKernels: info.registeredKernels,
    selfTest,
    nativeBuilds: builds,
  };
  if (flags.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  const engine = info.backend === 'tensorflow' ? `native TensorFlow ${info.tensorflowVersion ?? '?'}` : info.backend === 'wasm' ? 'WebAssembly (XNNPACK, 1 thread)' : 'plain JavaScript (slow; for checks only)';
  console.log(`backend     ${info.backend}: ${engine}`);
  console.log(`chosen by   ${report.chosenBy}${info.preference === 'auto' ? ' (auto tries tensorflow-gpu, tensorflow, then wasm)' : ''}`);
  console.log(`devices     ${devices.join(', ')}`);
  console.log(`threads     ${info.threads.intraOp} intra-op, ${info.threads.interOp} inter-op in this process (${report.cores} cores; a worker gives each training cores ÷ concurrent trainings unless runtime.threads is set)`);
  for (const fallback of info.fallbacks) console.log(`not taken   ${fallback.preference}: ${fallback.error}`);
  console.log(`self-test   ${selfTest}`);
  for (const build of builds) console.log(`native ${build.variant.padEnd(4)} ${build.ready ? 'ready' : 'not ready'}: ${build.detail}`);
  if (info.backend !== 'tensorflow') console.log('\nThe native engine trains several times faster than wasm: npm run setup:native (needs Python ≥ 3.9 with pip).');
}
