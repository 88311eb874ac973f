import { mergeConfig } from 'vitest/config';
import { projectTestConfig } from '../vitest.shared.mts';

// Workspace-level checks (the lint rules that enforce the architecture) live at the top of tools/.
export default mergeConfig(projectTestConfig(import.meta.url, { timeoutMs: 120_000 }), { test: { include: ['*.test.ts'] } });
