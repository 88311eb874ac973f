/**
 * Test doubles of `@detl/storage`, kept out of the production barrel: `@detl/storage/testing` is
 * importable from tests, test-support code and tools only (eslint.config.mjs bans it elsewhere).
 */
export { MemoryObjectStore } from './memory-object-store';
