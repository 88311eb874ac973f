import { projectTestConfig } from '../../vitest.shared.mts';

export default projectTestConfig(import.meta.url, { timeoutMs: 120_000 });
