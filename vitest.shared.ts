import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Vitest settings every project shares: tests live beside the code and run in forked processes,
 * because tfjs' wasm heap and Temporal's native core do not share a process well.
 * @param configUrl `import.meta.url` of the project's vitest.config.ts; the project folder becomes
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
    },
  });
}
