import { defineConfig } from 'vitest/config';

/**
 * Vitest settings every project shares: tests live beside the code and run in forked processes,
 * because tfjs' wasm heap and Temporal's native core do not share a process well.
 */
export function projectTestConfig(options: { timeoutMs?: number } = {}) {
  return defineConfig({
    test: {
      include: ['src/**/*.test.ts'],
      pool: 'forks',
      testTimeout: options.timeoutMs ?? 30_000,
      hookTimeout: options.timeoutMs ?? 30_000,
    },
  });
}
