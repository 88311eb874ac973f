import { describe, expect, it } from 'vitest';
import { STAGE_TABLE, STAGES, compareTasks, foldOfTask, foldTask, stageOfTask, taskLabel, taskOf } from './stage-table';

describe('stage table', () => {
  it('lists the five stages in workflow order, each name spelled once', () => {
    expect(STAGE_TABLE.map((stage) => stage.activity)).toEqual(['sampleDataset', 'pretrainFromScratch', 'fineTuneFold', 'aggregateResults', 'generateGradCams']);
    for (const column of ['activity', 'trackingStage', 'task', 'label'] as const) {
      expect(new Set(STAGE_TABLE.map((stage) => stage[column])).size).toBe(STAGE_TABLE.length);
    }
    expect(Object.keys(STAGES)).toEqual(STAGE_TABLE.map((stage) => stage.activity));
    expect(STAGES.fineTuneFold.trackingStage).toBe('fine_tune_fold');
  });

  it('names tasks: one per stage, one per fold for fine-tuning', () => {
    expect(taskOf('sampleDataset')).toBe('sample');
    expect(taskOf('pretrainFromScratch')).toBe('pretrain');
    expect(taskOf('fineTuneFold', 3)).toBe('fold-3');
    expect(taskOf('aggregateResults')).toBe('aggregate');
    expect(taskOf('generateGradCams')).toBe('grad-cam');
    expect(() => taskOf('fineTuneFold')).toThrow(/needs the fold/);
    expect(() => foldTask(-1)).toThrow(RangeError);
    expect(() => foldTask(1.5)).toThrow(RangeError);
  });

  it('reads task names back: every task it names maps to its stage and fold', () => {
    for (const stage of STAGE_TABLE) {
      const tasks = stage.perFold ? [0, 1, 12].map((fold) => taskOf(stage.activity, fold)) : [taskOf(stage.activity)];
      for (const task of tasks) expect(stageOfTask(task)).toBe(stage);
    }
    for (const fold of [0, 4, 10]) expect(foldOfTask(foldTask(fold))).toBe(fold);
    expect(foldOfTask('pretrain')).toBeNull();
    expect(foldOfTask('fold-')).toBeNull();
    expect(foldOfTask('fold-01')).toBeNull();
    expect(foldOfTask('fold-x')).toBeNull();
    expect(stageOfTask('fold-')).toBeNull();
    expect(stageOfTask('train')).toBeNull();
  });

  it('labels tasks for people', () => {
    expect(taskLabel('sample')).toBe('sample dataset');
    expect(taskLabel('fold-2')).toBe('fine-tune fold 2');
    expect(taskLabel('grad-cam')).toBe('grad-cam');
    expect(taskLabel('mystery')).toBe('mystery');
  });

  it('orders tasks as the workflow runs them, folds by number', () => {
    const tasks = ['grad-cam', 'fold-10', 'aggregate', 'zzz', 'fold-2', 'pretrain', 'sample', 'aaa'];
    expect(tasks.sort(compareTasks)).toEqual(['sample', 'pretrain', 'fold-2', 'fold-10', 'aggregate', 'grad-cam', 'aaa', 'zzz']);
  });
});
