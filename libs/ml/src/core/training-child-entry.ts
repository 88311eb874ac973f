/**
 * Entry of the training child process (forked by `runTrainingJob` with tsx). Training blocks
 * the event loop for seconds per batch, which would starve the parent's Temporal heartbeats,
 * and one process per training lets two folds use two cores.
 *
 * Protocol: the parent sends one `{ type: 'job' }` message; the child answers with one
 * `epoch` message per epoch and a final `result` or `error`, then exits (1 on error).
 */
import { runTrainingJobInProcess } from './training-runner';
import type { ChildMessage, ParentMessage } from './training-job';

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) {
      reject(new Error('training-child-entry must be started with child_process.fork'));
      return;
    }
    process.send(message, (error: Error | null) => (error ? reject(error) : resolve()));
  });
}

async function main(job: ParentMessage['job']): Promise<void> {
  const result = await runTrainingJobInProcess(job, (metrics) => send({ type: 'epoch', metrics }));
  await send({ type: 'result', result: { ...result, test: result.test ? { ...result.test, predictedClass: Array.from(result.test.predictedClass) } : null } });
}

if (!process.send) {
  process.stderr.write('training-child-entry must be started with child_process.fork\n');
  process.exit(2);
}

// A parent that dies (worker killed, crashed) closes the IPC channel; an orphaned training
// would keep a core busy for nothing, so it stops too. Training yields between batches, so this
// fires within one batch.
process.once('disconnect', () => process.exit(1));

process.once('message', (message: ParentMessage) => {
  main(message.job).then(
    () => {
      process.exit(0);
    },
    async (error: unknown) => {
      const failure = error instanceof Error ? error : new Error(String(error));
      try {
        await send({ type: 'error', message: failure.message, name: failure.name, ...(failure.stack ? { stack: failure.stack } : {}) });
      } finally {
        process.exit(1);
      }
    },
  );
});
