import { projectTestConfig } from '../../vitest.shared';

export default projectTestConfig(import.meta.url, { timeoutMs: 120_000 });
