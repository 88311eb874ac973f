import type { ExperimentSummary } from '@detl/activities';

const percent = (value: number) => `${(value * 100).toFixed(2)}%`;

/** The human-readable result block printed at the end of a run and by `detl runs show`. */
export function formatSummary(summary: ExperimentSummary): string {
  const lines: string[] = [];
  lines.push('');
  lines.push('Per-fold accuracy: ' + summary.foldAccuracies.map((accuracy, fold) => `fold ${fold} ${percent(accuracy)}`).join(', '));
  lines.push(
    `Accuracy: ${percent(summary.meanAccuracy)} ± ${percent(summary.stdAccuracy)} (mean ± std over ${summary.foldAccuracies.length} folds); ` +
      `pooled ${Math.round(summary.accuracyInterval.level * 100)}% bootstrap interval ${percent(summary.accuracyInterval.lower)}–${percent(summary.accuracyInterval.upper)}`,
  );
  lines.push('');
  lines.push('Confusion matrix summed over folds (rows: actual, columns: predicted)');
  lines.push(formatMatrix(summary.confusionMatrix, summary.classes));
  lines.push('');
  lines.push(`${'class'.padEnd(14)} ${'precision'.padStart(9)} ${'recall'.padStart(9)} ${'F1'.padStart(9)} ${'ROC-AUC'.padStart(9)} ${'n'.padStart(5)}`);
  for (const className of summary.classes) {
    const row = summary.perClass[className];
    if (!row) continue;
    const auc = summary.rocAuc[className];
    lines.push(
      `${className.padEnd(14)} ${percent(row.precision).padStart(9)} ${percent(row.recall).padStart(9)} ${percent(row.f1).padStart(9)} ${(auc == null ? '–' : auc.toFixed(3)).padStart(9)} ${String(row.support).padStart(5)}`,
    );
  }
  if (summary.perClassSource) {
    const { cells, worst, minImages } = summary.perClassSource;
    lines.push('');
    lines.push(`Accuracy per (class, source), pooled held-out predictions`);
    const width = Math.max(8, ...cells.map((cell) => cell.source.length + 1));
    lines.push(`${'class'.padEnd(14)} ${'source'.padEnd(width)} ${'accuracy'.padStart(9)} ${'n'.padStart(5)}`);
    for (const cell of cells) lines.push(`${cell.className.padEnd(14)} ${cell.source.padEnd(width)} ${percent(cell.accuracy).padStart(9)} ${String(cell.total).padStart(5)}`);
    lines.push(worst ? `Worst cell (≥ ${minImages} images): ${worst.className} from ${worst.source}, ${percent(worst.accuracy)} of ${worst.total}` : `Worst cell: none has ${minImages} or more images`);
  }
  if (summary.pointingGame) {
    const game = summary.pointingGame;
    const perClass = Object.entries(game.perClass).map(([name, rates]) => `${name} ${percent(rates.rate)} (n ${rates.scored})`);
    lines.push('');
    lines.push(
      `Pointing game (${game.method} maps): ${percent(game.rate)} of ${game.scored} correctly classified lesion images within ${game.tolerancePx.toFixed(1)} px (15 px at 224 px, Zhang et al.), ${percent(game.strictRate)} exactly on the lesion; ${perClass.join(', ')}`,
    );
  }
  return lines.join('\n');
}

/** A labelled integer matrix as aligned text. */
export function formatMatrix(matrix: number[][], classNames: string[]): string {
  const width = Math.max(8, ...classNames.map((name) => name.length + 1));
  const header = ''.padEnd(width) + classNames.map((name) => name.padStart(width)).join('');
  const rows = matrix.map((row, index) => (classNames[index] ?? String(index)).padEnd(width) + row.map((count) => String(count).padStart(width)).join(''));
  return [header, ...rows].join('\n');
}
