import { describe, expect, it } from 'vitest';
import { loadServiceSettings, serviceEnvironment } from './service-settings';
import { DEFAULT_TRAINING_TASK_QUEUE, parseTaskQueueList, TaskQueueNameError, trainingTaskQueueOf } from './task-queues';

describe('task queues', () => {
  it('reads repeated and comma-separated names in order, once each', () => {
    expect(parseTaskQueueList(['detl,training', 'training-gpu', ' detl '], '--queue')).toEqual(['detl', 'training', 'training-gpu']);
  });

  it.each([['two words'], ['-leading-dash'], [''], ['a,'], ['x'.repeat(201)], ['gpu/queue']])('rejects %j, naming the flag', (value) => {
    expect(() => parseTaskQueueList([value], '--queue')).toThrow(TaskQueueNameError);
    expect(() => parseTaskQueueList([value], '--queue')).toThrow(/^--queue "/);
  });

  it('needs at least one name', () => {
    expect(() => parseTaskQueueList([], 'DETL_WORKER_QUEUES')).toThrow('DETL_WORKER_QUEUES: no task queue named');
  });

  it('takes the training queue from DETL_TRAINING_TASK_QUEUE, default training, and hands it on to child processes', () => {
    expect(trainingTaskQueueOf(loadServiceSettings({}, '/srv'))).toBe(DEFAULT_TRAINING_TASK_QUEUE);
    const gpu = loadServiceSettings({ DETL_TRAINING_TASK_QUEUE: 'training-gpu' }, '/srv');
    expect(trainingTaskQueueOf(gpu)).toBe('training-gpu');
    expect(serviceEnvironment(gpu).DETL_TRAINING_TASK_QUEUE).toBe('training-gpu');
    expect(trainingTaskQueueOf({ temporal: { address: 'x:1', namespace: 'default', taskQueue: 'detl' } })).toBe('training');
    expect(() => loadServiceSettings({ DETL_TRAINING_TASK_QUEUE: 'no spaces' }, '/srv')).toThrow(/DETL_TRAINING_TASK_QUEUE/);
  });
});
