import { projectTestConfig } from '../../vitest.shared';

export default projectTestConfig({ timeoutMs: 600_000 });
