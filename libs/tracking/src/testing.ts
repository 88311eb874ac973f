/**
 * Test helpers of `@detl/tracking`, kept out of the production barrel: `@detl/tracking/testing` is
 * importable from tests, test-support code and tools only (eslint.config.mjs bans it elsewhere).
 */
export { createTestDatabase, type TestDatabase } from './test-database';
export { testResultSummary } from './test-result-summary';
