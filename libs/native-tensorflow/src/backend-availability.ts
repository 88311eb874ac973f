import { existsSync } from 'node:fs';
import { checkInstalledNativeBuild } from './native-build-layout';

/** Environment variable that forces the tfjs backend of every training (`tensorflow-gpu`, `tensorflow`, `wasm`, `cpu`, `auto`). */
export const BACKEND_ENV_VARIABLE = 'DETL_TF_BACKEND';

/**
 * Why the GPU engine cannot run on this machine, or null. Loading the GPU build only to learn
 * there is no GPU would put a second TensorFlow into the process before the CPU build loads, so
 * the driver is looked for first (the kernel module's proc file exists on hosts and in containers
 * that expose a GPU).
 */
export function nvidiaDriverProblem(): string | null {
  return existsSync('/proc/driver/nvidia/version') ? null : 'no NVIDIA driver on this machine (/proc/driver/nvidia/version is absent)';
}

/**
 * Why a native backend asked for explicitly cannot start on this machine, checked without loading
 * TensorFlow (so a CLI can refuse before anything starts, and cheaply); null when it can, and for
 * the other backends.
 */
export function nativeBackendProblem(preference: string): string | null {
  if (preference !== 'tensorflow' && preference !== 'tensorflow-gpu') return null;
  const driverProblem = preference === 'tensorflow-gpu' ? nvidiaDriverProblem() : null;
  if (driverProblem) return driverProblem;
  const check = checkInstalledNativeBuild(preference === 'tensorflow-gpu' ? 'gpu' : 'cpu');
  return check.ok ? null : check.reason;
}
