import { projectTestConfig } from '../../vitest.shared';

export default projectTestConfig(import.meta.url, { timeoutMs: 600_000 });
