import * as Plot from '@observablehq/plot';
import { useEffect, useRef } from 'react';
import type { EpochJson, FoldJson, StageAttemptJson } from '../api-types';
import { percent } from './format';

/** Renders one Observable Plot figure; `make` runs again whenever `deps` change. */
export function PlotFigure({ make, deps, label }: { make: () => ReturnType<typeof Plot.plot>; deps: readonly unknown[]; label: string }) {
  const container = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const figure = make();
    container.current?.replaceChildren(figure);
    return () => figure.remove();
  }, deps);
  return <div className="figure" role="img" aria-label={label} ref={container} />;
}

interface HeatCell {
  actual: string;
  predicted: string;
  count: number;
  rate: number;
}

/**
 * The summed confusion matrix: rows are true classes, columns predictions; each cell shows its count
 * and its share of the row (the recall of that true class), coloured by the share.
 */
export function ConfusionHeatmap({ classes, matrix, width = 460 }: { classes: string[]; matrix: number[][]; width?: number }) {
  const cells: HeatCell[] = matrix.flatMap((row, r) => {
    const total = row.reduce((sum, cell) => sum + cell, 0);
    return row.map((count, c) => ({ actual: classes[r] ?? `class ${r}`, predicted: classes[c] ?? `class ${c}`, count, rate: total === 0 ? 0 : count / total }));
  });
  return (
    <PlotFigure
      label="confusion matrix heatmap"
      deps={[JSON.stringify(matrix), classes.join(), width]}
      make={() =>
        Plot.plot({
          width,
          height: width * 0.8,
          marginLeft: 100,
          marginBottom: 50,
          padding: 0,
          x: { domain: classes, label: 'predicted', tickRotate: -20 },
          y: { domain: classes, label: 'true' },
          color: { type: 'linear', domain: [0, 1], scheme: 'blues', legend: true, label: 'share of the true class (row)', tickFormat: '.0%' },
          marks: [
            Plot.cell(cells, { x: 'predicted', y: 'actual', fill: 'rate', inset: 1, title: (d: HeatCell) => `${d.actual} → ${d.predicted}: ${d.count} (${percent(d.rate)})` }),
            Plot.text(cells, {
              x: 'predicted',
              y: 'actual',
              text: (d: HeatCell) => `${d.count}\n${percent(d.rate, 0)}`,
              fill: (d: HeatCell) => (d.rate > 0.5 ? 'white' : 'black'),
              fontSize: 12,
              lineHeight: 1.2,
            }),
          ],
        })
      }
    />
  );
}

/** Whole-epoch ticks for short runs (Plot would put ticks at 1.5, 2.5 …); Plot's own choice for long ones. */
function integerTicks(epochs: number[]): { ticks?: number[] } {
  const last = Math.max(1, ...epochs);
  return last <= 15 ? { ticks: Array.from({ length: last }, (_, index) => index + 1) } : {};
}

interface CurvePoint {
  epoch: number;
  value: number;
  series: string;
}

/** Loss or accuracy per epoch of one task: training and validation, one line per attempt when retried. */
function curvePoints(epochs: EpochJson[], metric: 'loss' | 'accuracy'): CurvePoint[] {
  const attempts = new Set(epochs.map((epoch) => epoch.attempt));
  const suffix = (attempt: number) => (attempts.size > 1 ? ` (attempt ${attempt})` : '');
  return epochs.flatMap((epoch) => {
    const train = metric === 'loss' ? epoch.trainLoss : epoch.trainAccuracy;
    const validation = metric === 'loss' ? epoch.validationLoss : epoch.validationAccuracy;
    const points: CurvePoint[] = [{ epoch: epoch.epoch + 1, value: train, series: `training${suffix(epoch.attempt)}` }];
    if (validation !== null) points.push({ epoch: epoch.epoch + 1, value: validation, series: `validation${suffix(epoch.attempt)}` });
    return points;
  });
}

/** Training and validation loss and accuracy of one task (pretraining or a fold), per epoch. */
export function LearningCurves({ task, epochs }: { task: string; epochs: EpochJson[] }) {
  const chart = (metric: 'loss' | 'accuracy') => (
    <PlotFigure
      label={`${task} ${metric} per epoch`}
      deps={[task, metric, epochs.length, epochs[epochs.length - 1]?.trainLoss]}
      make={() =>
        Plot.plot({
          width: 300,
          height: 180,
          marginLeft: 44,
          x: { label: 'epoch', tickFormat: 'd', ...integerTicks(epochs.map((epoch) => epoch.epoch + 1)) },
          y: { label: metric, grid: true, ...(metric === 'accuracy' ? { domain: [0, 1], tickFormat: '.0%' } : {}) },
          color: { legend: true },
          marks: [
            Plot.lineY(curvePoints(epochs, metric), { x: 'epoch', y: 'value', stroke: 'series', marker: 'circle' }),
          ],
        })
      }
    />
  );
  return (
    <figure className="curve-card" data-task={task}>
      <figcaption>{task}</figcaption>
      {chart('loss')}
      {chart('accuracy')}
    </figure>
  );
}

/** Test accuracy of each fold, with the mean as a rule. */
export function FoldAccuracyChart({ folds }: { folds: FoldJson[] }) {
  const scored = folds.filter((fold) => fold.accuracy !== null).map((fold) => ({ fold: `fold ${fold.foldIndex}`, accuracy: fold.accuracy as number }));
  const mean = scored.reduce((sum, fold) => sum + fold.accuracy, 0) / Math.max(1, scored.length);
  return (
    <PlotFigure
      label="test accuracy per fold"
      deps={[JSON.stringify(scored)]}
      make={() =>
        Plot.plot({
          width: 420,
          height: 220,
          marginLeft: 44,
          x: { label: null },
          y: { domain: [0, 1], label: 'test accuracy', grid: true, tickFormat: '.0%' },
          marks: [
            Plot.barY(scored, { x: 'fold', y: 'accuracy', fill: 'steelblue' }),
            Plot.text(scored, { x: 'fold', y: 'accuracy', text: (d: { accuracy: number }) => percent(d.accuracy), dy: -8 }),
            Plot.ruleY([mean], { stroke: 'darkorange', strokeDasharray: '4 3' }),
          ],
        })
      }
    />
  );
}

const STATUS_COLOURS = { domain: ['succeeded', 'failed', 'running'], range: ['#2e7d32', '#c62828', '#f9a825'] };

/** Stage attempts on a time axis: one bar per attempt, coloured by outcome, so retries and failures stand out. */
export function AttemptTimeline({ attempts }: { attempts: StageAttemptJson[] }) {
  const now = Date.now();
  const bars = attempts.map((attempt) => ({
    label: `${attempt.task} #${attempt.attempt}`,
    start: new Date(attempt.startedAt),
    // A zero-length bar would be invisible; running attempts extend to now.
    end: new Date(Math.max(new Date(attempt.finishedAt ?? now).getTime(), new Date(attempt.startedAt).getTime() + 1)),
    status: attempt.status,
  }));
  return (
    <PlotFigure
      label="stage attempt timeline"
      deps={[JSON.stringify(attempts)]}
      make={() =>
        Plot.plot({
          width: 760,
          height: 40 + bars.length * 22,
          marginLeft: 110,
          x: { type: 'utc', label: 'time (UTC)' },
          y: { domain: bars.map((bar) => bar.label), label: null },
          color: { ...STATUS_COLOURS, legend: true },
          marks: [Plot.barX(bars, { x1: 'start', x2: 'end', y: 'label', fill: 'status', insetTop: 3, insetBottom: 3 })],
        })
      }
    />
  );
}

interface RunSeriesPoint {
  run: string;
  epoch: number;
  value: number;
}

/** Validation accuracy per epoch of several runs in one chart (fold curves averaged per epoch). */
export function CompareCurves({ series, title }: { series: RunSeriesPoint[]; title: string }) {
  return (
    <PlotFigure
      label={title}
      deps={[JSON.stringify(series)]}
      make={() =>
        Plot.plot({
          width: 460,
          height: 240,
          marginLeft: 44,
          x: { label: 'epoch', tickFormat: 'd', ...integerTicks(series.map((point) => point.epoch)) },
          y: { domain: [0, 1], label: 'validation accuracy', grid: true, tickFormat: '.0%' },
          color: { legend: true },
          marks: [Plot.lineY(series, { x: 'epoch', y: 'value', stroke: 'run', marker: 'circle' })],
        })
      }
    />
  );
}
