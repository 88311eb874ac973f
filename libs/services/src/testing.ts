/**
 * Test helpers of `@detl/services`, kept out of the production barrel: `@detl/services/testing` is
 * importable from tests, test-support code and tools only (eslint.config.mjs bans it elsewhere).
 */
export { startTestMinio, type TestMinio } from './test-minio';
export { oneLineTemporalLog, startTestTemporal } from './test-temporal';
