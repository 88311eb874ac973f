import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import { projectTestConfig } from '../../vitest.shared';

// The tests start real servers (Temporal dev server, MinIO, PGlite); a cold start on two busy cores
// can take most of a minute. root makes the include pattern work from any cwd (Nx runs from the
// workspace root).
export default mergeConfig(projectTestConfig({ timeoutMs: 120_000 }), {
  test: { root: fileURLToPath(new URL('.', import.meta.url)) },
});
