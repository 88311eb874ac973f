import cliProgress from 'cli-progress';
import { STAGES, foldTask, taskLabel, taskOf, type ExperimentConfig, type StageActivity } from '@detl/config';
import type { ExperimentProgress, StageState } from '@detl/workflows';

/** What the run record says about each task (the stage table's task names: `sample`, `pretrain`, `fold-0`, …). */
export interface TaskRecord {
  /** Tasks a worker has started (an attempt row exists). */
  started: Set<string>;
  /** Epochs finished per training task, newest attempt only. */
  epochs: Map<string, number>;
}

/** Shown instead of `running` while a scheduled stage waits for a free worker slot. */
type DisplayState = StageState | 'queued';

/**
 * Live progress of one experiment: bars on a terminal, one line per event otherwise (CI logs,
 * pipes), so the same command is readable in both.
 */
export class ProgressView {
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly multiBar: cliProgress.MultiBar | undefined;
  private readonly printed = new Map<string, string>();

  constructor(
    private readonly config: ExperimentConfig,
    interactive = Boolean(process.stdout.isTTY),
  ) {
    this.multiBar = interactive
      ? new cliProgress.MultiBar(
          { format: ' {task} |{bar}| {value}/{total} {unit} {state}', hideCursor: true, clearOnComplete: false, barsize: 30 },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  }

  /** Renders the latest workflow progress and epoch counts. */
  update(progress: ExperimentProgress, record: TaskRecord): void {
    const { epochs } = record;
    const pretrainTask = taskOf('pretrainFromScratch');
    const rows: { task: string; value: number; total: number; unit: string; state: DisplayState }[] = [
      { task: stageLabel('sampleDataset'), ...stageRow(progress.stages.sampleDataset) },
      { task: stageLabel('pretrainFromScratch'), value: epochs.get(pretrainTask) ?? 0, total: this.config.pretrain.epochs, unit: 'epochs', state: progress.stages.pretrainFromScratch },
      ...progress.folds.map((state, fold) => ({
        task: taskLabel(foldTask(fold)),
        value: epochs.get(foldTask(fold)) ?? 0,
        total: this.config.fineTune.epochs,
        unit: 'epochs',
        // The workflow schedules every fold at once; only those a worker picked up are running.
        state: state === 'running' && !record.started.has(foldTask(fold)) ? ('queued' as const) : state,
      })),
      { task: stageLabel('aggregateResults'), ...stageRow(progress.stages.aggregateResults) },
      { task: stageLabel('generateGradCams'), ...stageRow(progress.stages.generateGradCams) },
    ];
    for (const row of rows) {
      const value = row.state === 'succeeded' ? row.total : Math.min(row.value, row.total);
      if (this.multiBar) {
        let bar = this.bars.get(row.task);
        if (!bar) {
          bar = this.multiBar.create(row.total, value, { task: row.task, unit: row.unit, state: row.state });
          this.bars.set(row.task, bar);
        }
        bar.update(value, { state: row.state });
      } else {
        const line = `${row.task.trim()}: ${row.state}${row.unit === 'epochs' ? ` (${value}/${row.total} epochs)` : ''}`;
        if (this.printed.get(row.task) !== line && row.state !== 'pending' && row.state !== 'queued') {
          this.printed.set(row.task, line);
          console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
        }
      }
    }
  }

  /** Stops redrawing; call before printing anything else. */
  stop(): void {
    this.multiBar?.stop();
  }
}

/** Width of the widest label (`fine-tune fold <k>`), so the bars line up. */
const LABEL_WIDTH = `${STAGES.fineTuneFold.label} 0`.length;

/** A stage's label from the stage table, padded to line the bars up. */
function stageLabel(activity: StageActivity): string {
  return STAGES[activity].label.padEnd(LABEL_WIDTH);
}

function stageRow(state: StageState) {
  return { value: state === 'succeeded' ? 1 : 0, total: 1, unit: 'step', state };
}
