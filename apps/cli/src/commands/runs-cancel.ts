import { WorkflowNotFoundError } from '@temporalio/client';
import type { TrackingStore } from '@detl/tracking';
import { CliError } from '../cli-error';
import { findRun } from '../run-reference';
import { openRuntime } from '../runtime';

/** Flags of `detl runs cancel`. */
export interface CancelRunFlags {
  json?: boolean;
  /** Seconds to wait for the run record to say how the run ended (default 120). */
  timeout?: string;
}

const FINISHED = ['succeeded', 'failed', 'cancelled'];

/**
 * `detl runs cancel <id>`: asks Temporal to cancel the run's workflow and waits until the run
 * record says it ended. The workflow cancels its activities; a training activity learns of it on
 * its next heartbeat and kills its training child, and the workflow records the run as cancelled.
 */
export async function cancelRunCommand(id: string, flags: CancelRunFlags = {}): Promise<void> {
  const timeoutSeconds = Number(flags.timeout ?? '120');
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 0) throw new CliError(`--timeout ${flags.timeout}: expected whole seconds`, 2);
  const runtime = await openRuntime({ temporal: true, s3: false });
  try {
    const run = await findRun(runtime.tracking, id, `run ${id}`);
    if (!run) throw new CliError(`no run with id, id prefix or workflow id "${id}" — see detl runs list`);
    if (FINISHED.includes(run.status)) throw new CliError(`run ${run.id} has already ${run.status === 'cancelled' ? 'been cancelled' : run.status}; nothing to cancel`);
    const requestedAt = Date.now();
    let note: string | null = null;
    try {
      await (await runtime.temporal()).workflow.getHandle(run.workflowId).cancel();
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
      // The workflow is gone (finished without recording it, or its history expired): nothing can
      // still be running for it, so the record is corrected directly.
      await runtime.tracking.markExperimentFinished(run.id, { status: 'cancelled', error: 'cancelled by detl runs cancel (its workflow no longer existed)' });
      note = 'its workflow no longer existed; the record is corrected';
    }
    const status = await waitForEnd(runtime.tracking, run.id, timeoutSeconds * 1000);
    const seconds = (Date.now() - requestedAt) / 1000;
    if (flags.json) {
      console.log(JSON.stringify({ id: run.id, workflowId: run.workflowId, status, secondsToRecorded: status === null ? null : seconds, note }, null, 2));
    } else if (status === null) {
      console.log(`cancellation of run ${run.id} requested; no worker has recorded it within ${timeoutSeconds} s — it is recorded when a worker next runs the workflow (detl runs show ${run.id.slice(0, 8)})`);
    } else {
      console.log(`run ${run.id} ${status === 'cancelled' ? 'cancelled' : `ended as ${status} before the cancellation took effect`} (${seconds.toFixed(1)} s)${note ? `; ${note}` : ''}`);
    }
    if (status !== null && status !== 'cancelled') process.exitCode = 1;
  } finally {
    await runtime.close();
  }
}

async function waitForEnd(tracking: TrackingStore, id: string, timeoutMs: number): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = (await tracking.getExperiment(id))?.status;
    if (status !== undefined && FINISHED.includes(status)) return status;
    if (Date.now() >= deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
