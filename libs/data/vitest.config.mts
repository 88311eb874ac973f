import { projectTestConfig } from '../../vitest.shared.mts';

export default projectTestConfig(import.meta.url, { timeoutMs: 60_000 });
