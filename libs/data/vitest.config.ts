import { projectTestConfig } from '../../vitest.shared';

// The shared config's include is relative to the root; anchor it here so running from the
// workspace root (`vitest run --config libs/data/vitest.config.ts`) finds this project's tests.
export default { ...projectTestConfig({ timeoutMs: 60_000 }), root: __dirname };
