import { mergeConfig } from 'vitest/config';
import { projectTestConfig } from '../vitest.shared.mts';

// Workspace-level checks (the lint rules that enforce the architecture) live at the top of tools/;
// tests of the benchmarks' own code (no training) beside them in bench/.
export default mergeConfig(projectTestConfig(import.meta.url, { timeoutMs: 120_000 }), { test: { include: ['*.test.ts', 'bench/*.test.ts'] } });
