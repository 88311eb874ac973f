import { projectTestConfig } from '../../vitest.shared.mts';

// The browser test starts PostgreSQL, a server and Chromium; a cold start on a busy 2-core machine takes a while.
export default projectTestConfig(import.meta.url, { timeoutMs: 120_000 });
