import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { LogEntry } from '@temporalio/worker';
import { resolveToolBinary } from './tool-binary';

/**
 * Starts the Temporal dev server binary that `detl services` runs (tools/ensure-binaries.sh builds
 * it) as a throw-away `TestWorkflowEnvironment` on loopback, for tests that run workflows; stop it
 * with `teardown()`.
 * @throws MissingBinaryError when no `temporal` binary is found.
 */
export async function startTestTemporal(): Promise<TestWorkflowEnvironment> {
  // Loaded here, not at the top: the MinIO-only tests that import this entry need not load Temporal's SDK.
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  return TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: resolveToolBinary('temporal') }, ip: '127.0.0.1' } });
}

/**
 * A Temporal SDK log function for tests: one line per entry. Activities and workflows that fail on
 * purpose would otherwise print their whole error objects, stack traces included, into the test
 * log. Install it with `Runtime.install({ logger: new DefaultLogger('WARN', oneLineTemporalLog) })`
 * before anything starts the runtime (worker lifecycle chatter at INFO buries the test output).
 */
export function oneLineTemporalLog({ level, message, meta }: LogEntry): void {
  const error = meta?.['error'];
  const where = meta?.['activityType'] ?? meta?.['workflowType'];
  process.stderr.write(`[${level}] ${message}${where ? ` (${String(where)})` : ''}${error instanceof Error ? `: ${error.message}` : ''}\n`);
}
