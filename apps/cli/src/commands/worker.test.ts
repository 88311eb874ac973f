import { describe, expect, it } from 'vitest';
import { expectCliErrors } from '../test-support/run-detl';
import { workerEnvironment } from './worker';

describe('detl worker flags', () => {
  it('passes --queue (repeatable, comma lists) to the worker process as one list, each name once', () => {
    expect(workerEnvironment({ queue: ['detl,training', 'training-gpu', 'training'], maxTrainings: '1', threads: '1' })).toEqual({
      DETL_WORKER_QUEUES: 'detl,training,training-gpu',
      DETL_WORKER_SLOTS: '1',
      DETL_TRAINING_THREADS: '1',
    });
    // No --queue: the worker's own default (main and training queue), so the quickstart is unchanged.
    expect(workerEnvironment({ queue: [] })).toEqual({});
  });

  it('rejects malformed queue names and counts with exit 2 before anything starts', async () => {
    await expectCliErrors([
      [['worker', '--queue', 'two words'], '--queue "two words": not a task queue name', 2],
      [['worker', '--queue', 'detl,'], '--queue "": not a task queue name', 2],
      [['worker', '--queue', 'training', '--queue', '-gpu'], '--queue "-gpu"', 2],
      [['worker', '--max-trainings', '0'], '--max-trainings 0: expected a positive integer', 2],
      [['worker', '--max-trainings', '1.5'], '--max-trainings 1.5', 2],
    ]);
  });
});
