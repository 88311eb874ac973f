import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseExperimentConfig } from '@detl/config';
import type { ExperimentProgress } from '@detl/workflows';
import { ProgressView } from './progress-view';

afterEach(() => vi.restoreAllMocks());

describe('ProgressView (line mode)', () => {
  it('reads epochs and started tasks by the stage table’s task names and labels rows with its labels', () => {
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line.replace(/^\[[\d:]+\] /, '')));
    const config = parseExperimentConfig({ dataset: { folds: 3 }, pretrain: { epochs: 4 }, fineTune: { epochs: 5 } });
    const view = new ProgressView(config, false);
    const progress: ExperimentProgress = {
      experimentId: 'e',
      stages: { sampleDataset: 'succeeded', pretrainFromScratch: 'succeeded', fineTuneFold: 'running', aggregateResults: 'pending', generateGradCams: 'pending' },
      folds: ['running', 'running', 'succeeded'],
      error: null,
    };
    view.update(progress, { started: new Set(['sample', 'pretrain', 'fold-0', 'fold-2']), epochs: new Map([['pretrain', 4], ['fold-0', 2], ['fold-1', 1]]) });
    expect(lines).toEqual([
      'sample dataset: succeeded',
      'pretrain: succeeded (4/4 epochs)',
      'fine-tune fold 0: running (2/5 epochs)',
      // Fold 1 has no attempt yet: queued, so not printed; fold 2 finished.
      'fine-tune fold 2: succeeded (5/5 epochs)',
    ]);
  });
});
