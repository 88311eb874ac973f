import { mergeConfig } from 'vitest/config';
import { projectTestConfig } from '../vitest.shared.mts';

// The manifests live at the top of infra/, and so does their test.
export default mergeConfig(projectTestConfig(import.meta.url), { test: { include: ['*.test.ts'] } });
