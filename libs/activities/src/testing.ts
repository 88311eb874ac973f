/**
 * Test helpers of `@detl/activities`, kept out of the production barrel: `@detl/activities/testing`
 * is importable from tests, test-support code and tools only (eslint.config.mjs bans it elsewhere).
 * The helpers sit in test-support/, where lint lets them use the other libraries' testing entries.
 */
export { faultTestConfig, killProcess, sleep, startWorkerProcess, trainingChildren, until, type WorkerProcessOptions } from './test-support/processes';
export { startTestServices, startTestStores, type TestServices, type TestStores } from './test-support/test-services';
