import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Console output of the code under test that says nothing about the tests, dropped from the log:
 * tfjs-backend-cpu's advice to install tfjs-node, printed on its first use in every test process
 * (detl picks its backend on purpose; the cpu backend is the reference kernels' home in tests).
 */
const TEST_LOG_NOISE = [/Hi, looks like you are running TensorFlow\.js in Node\.js/];

/**
 * Vitest settings every project shares: tests live beside the code and run in forked processes,
 * because tfjs' wasm heap and Temporal's native core do not share a process well.
 * @param configUrl `import.meta.url` of the project's vitest.config.mts; the project folder becomes
 * the root, so the include pattern works whatever the cwd (Nx runs from the workspace root).
 */
export function projectTestConfig(configUrl: string, options: { timeoutMs?: number } = {}) {
  return defineConfig({
    test: {
      root: fileURLToPath(new URL('.', configUrl)),
      include: ['src/**/*.test.ts'],
      pool: 'forks',
      testTimeout: options.timeoutMs ?? 30_000,
      hookTimeout: options.timeoutMs ?? 30_000,
      onConsoleLog: (log) => !TEST_LOG_NOISE.some((pattern) => pattern.test(log)),
      // The AWS SDK's notice that its releases after January 2027 need Node 22, once per process (bin/detl sets the same).
      // Commands run by tests stop their embedded services on exit instead of leaving them up for the idle time.
      env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', DETL_SERVICES_IDLE_MINUTES: '0' },
    },
  });
}
