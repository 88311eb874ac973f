import { checkInstalledNativeBuild } from '@detl/native-tensorflow';
import { initBackend, type BackendInfo } from '../core/backend';

/**
 * The backend the backend-independent ml tests run on: wasm by default, the native TensorFlow
 * build with `DETL_TEST_BACKEND=tensorflow` (the `test-native` target). Test-only; not exported
 * from the package.
 */
export const BACKEND_UNDER_TEST: 'wasm' | 'tensorflow' = process.env['DETL_TEST_BACKEND'] === 'tensorflow' ? 'tensorflow' : 'wasm';

/** Why the native suite cannot run here, or null. */
export const NATIVE_UNAVAILABLE: string | null = (() => {
  const check = checkInstalledNativeBuild('cpu');
  return check.ok ? null : check.reason;
})();

/** Starts {@link BACKEND_UNDER_TEST}; a native run on a machine without the build fails with the reason. */
export async function initBackendUnderTest(): Promise<BackendInfo> {
  if (BACKEND_UNDER_TEST === 'tensorflow' && NATIVE_UNAVAILABLE) {
    throw new Error(`DETL_TEST_BACKEND=tensorflow but the native build is not usable: ${NATIVE_UNAVAILABLE} (run: npm run setup:native)`);
  }
  return initBackend(BACKEND_UNDER_TEST);
}
