import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import { projectTestConfig } from '../../vitest.shared';

// Every test file starts its own database (an embedded PGlite server takes seconds to initialise
// on two cores), hence the long timeouts; root makes the include pattern work from any cwd.
export default mergeConfig(projectTestConfig({ timeoutMs: 120_000 }), {
  test: { root: fileURLToPath(new URL('.', import.meta.url)) },
});
