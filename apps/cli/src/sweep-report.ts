import sharp from 'sharp';
import type { SweepDetail } from '@detl/tracking';

/** Runs of one variant of a sweep: the experiments whose overrides agree except for `seed`. */
export interface SweepVariantReport {
  /** The overrides that define the variant (`seed` left out), e.g. `fineTune.freeze=none`. */
  label: string;
  /** Sweep indexes of its runs, in plan order. */
  indexes: number[];
  /** Mean fold accuracy of each finished run. */
  runAccuracies: number[];
  /** Std of the fold accuracies of each finished run. */
  runStds: number[];
  /** Mean over runs of their mean fold accuracy; null when no run finished. */
  mean: number | null;
  /** Sample std (n − 1) of the runs' mean accuracies (seed-to-seed spread); null below two runs. */
  std: number | null;
  /** Lowest lower and highest upper bound of the runs' pooled bootstrap intervals. */
  bootstrap: { lower: number; upper: number } | null;
  /** Runs not (or not yet) succeeded. */
  unfinished: number;
}

function labelOf(overrides: Record<string, unknown>): string {
  const parts = Object.entries(overrides)
    .filter(([key]) => key !== 'seed')
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return parts.length === 0 ? '(base)' : parts.join(' ');
}

/**
 * Groups a sweep's experiments into variants (equal overrides apart from the seed) and summarises
 * each over its seeds, best mean first.
 */
export function summariseSweep(sweep: SweepDetail): SweepVariantReport[] {
  const groups = new Map<string, SweepDetail['experiments']>();
  for (const experiment of sweep.experiments) {
    const label = labelOf(experiment.overrides);
    groups.set(label, [...(groups.get(label) ?? []), experiment]);
  }
  const variants = [...groups.entries()].map(([label, rows]): SweepVariantReport => {
    const done = rows.filter((row) => row.status === 'succeeded' && row.summary !== null);
    const runAccuracies = done.map((row) => row.summary?.meanAccuracy ?? 0);
    const mean = runAccuracies.length === 0 ? null : runAccuracies.reduce((a, b) => a + b, 0) / runAccuracies.length;
    const std =
      mean === null || runAccuracies.length < 2 ? null : Math.sqrt(runAccuracies.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (runAccuracies.length - 1));
    const intervals = done.map((row) => row.summary?.accuracyInterval).filter((interval) => interval !== undefined);
    return {
      label,
      indexes: rows.map((row) => row.index),
      runAccuracies,
      runStds: done.map((row) => row.summary?.stdAccuracy ?? 0),
      mean,
      std,
      bootstrap: intervals.length === 0 ? null : { lower: Math.min(...intervals.map((i) => i.lower)), upper: Math.max(...intervals.map((i) => i.upper)) },
      unfinished: rows.length - done.length,
    };
  });
  return variants.sort((a, b) => (b.mean ?? -1) - (a.mean ?? -1));
}

const pct = (value: number) => `${(value * 100).toFixed(1)}%`;

/** The comparison as a Markdown table (what the README's ablation table shows). */
export function formatSweepReportTable(sweep: SweepDetail, variants: readonly SweepVariantReport[]): string {
  const lines = [
    `sweep ${sweep.name} (${sweep.id}), ${sweep.status}: ${sweep.experiments.length} runs`,
    '',
    '| variant | runs | accuracy over seeds (mean ± std) | per run: mean ± std over its folds | pooled 95% bootstrap (widest) |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const v of variants) {
    const overSeeds = v.mean === null ? '–' : `${pct(v.mean)}${v.std === null ? '' : ` ± ${(v.std * 100).toFixed(1)}`}`;
    const perRun = v.runAccuracies.map((accuracy, i) => `${pct(accuracy)} ± ${((v.runStds[i] ?? 0) * 100).toFixed(1)}`).join(', ') || '–';
    const runs = `${v.runAccuracies.length}${v.unfinished > 0 ? ` (+${v.unfinished} unfinished)` : ''}`;
    const bootstrap = v.bootstrap ? `${pct(v.bootstrap.lower)}–${pct(v.bootstrap.upper)}` : '–';
    lines.push(`| ${v.label} | ${runs} | ${overSeeds} | ${perRun} | ${bootstrap} |`);
  }
  return lines.join('\n');
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const FONT = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';

/**
 * A horizontal bar per variant: mean accuracy over its runs, a whisker of ± std over the runs, and
 * a dot per run, on a 0–100 % axis. Drawn as SVG, rasterised by sharp.
 * @returns PNG bytes.
 */
export async function renderSweepReportPng(title: string, variants: readonly SweepVariantReport[]): Promise<Uint8Array> {
  // About 7 px per character at 12 px DejaVu Sans; longer labels are cut with an ellipsis.
  const maxChars = 110;
  const shown = variants.map((v) => (v.label.length > maxChars ? `${v.label.slice(0, maxChars - 1)}…` : v.label));
  const labelWidth = 30 + Math.max(60, ...shown.map((label) => label.length * 7));
  const width = labelWidth + 640;
  const rowHeight = 44;
  const plot = { left: labelWidth, right: width - 40, top: 60, bottom: 60 + rowHeight * Math.max(1, variants.length) };
  const height = plot.bottom + 60;
  const px = (value: number) => plot.left + Math.min(1, Math.max(0, value)) * (plot.right - plot.left);
  const parts = [
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="32" text-anchor="middle" font-size="18" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  for (let tick = 0; tick <= 100; tick += 10) {
    const x = px(tick / 100).toFixed(1);
    parts.push(`<line x1="${x}" y1="${plot.top}" x2="${x}" y2="${plot.bottom}" stroke="#eeeeee"/>`);
    parts.push(`<text x="${x}" y="${plot.bottom + 18}" text-anchor="middle" font-size="12">${tick}%</text>`);
  }
  const chance = px(0.25).toFixed(1);
  parts.push(`<text x="${(plot.left + plot.right) / 2}" y="${plot.bottom + 42}" text-anchor="middle" font-size="13">4-class accuracy, each run's mean over its folds (dashed: chance, 25%)</text>`);
  variants.forEach((v, i) => {
    const y = plot.top + i * rowHeight;
    const mid = y + rowHeight / 2;
    parts.push(`<text x="${plot.left - 10}" y="${mid + 4}" text-anchor="end" font-size="12">${escapeXml(shown[i] ?? v.label)}</text>`);
    if (v.mean === null) {
      parts.push(`<text x="${plot.left + 6}" y="${mid + 4}" font-size="12" fill="#888888">no finished run</text>`);
      return;
    }
    parts.push(`<rect x="${plot.left}" y="${y + 10}" width="${(px(v.mean) - plot.left).toFixed(1)}" height="${rowHeight - 20}" fill="#4e79a7" fill-opacity="0.75"/>`);
    if (v.std !== null) {
      const [a, b] = [px(v.mean - v.std), px(v.mean + v.std)];
      parts.push(`<line x1="${a.toFixed(1)}" y1="${mid}" x2="${b.toFixed(1)}" y2="${mid}" stroke="#222222" stroke-width="2"/>`);
      for (const x of [a, b]) parts.push(`<line x1="${x.toFixed(1)}" y1="${mid - 7}" x2="${x.toFixed(1)}" y2="${mid + 7}" stroke="#222222" stroke-width="2"/>`);
    }
    for (const accuracy of v.runAccuracies) parts.push(`<circle cx="${px(accuracy).toFixed(1)}" cy="${mid}" r="4" fill="#e15759" stroke="#ffffff"/>`);
    parts.push(`<text x="${Math.min(plot.right - 4, px(v.mean + (v.std ?? 0)) + 8).toFixed(1)}" y="${mid - 8}" font-size="11">${pct(v.mean)}</text>`);
  });
  // Over the bars, so chance level stays visible where a bar covers it.
  parts.push(`<line x1="${chance}" y1="${plot.top}" x2="${chance}" y2="${plot.bottom}" stroke="#555555" stroke-dasharray="5 4"/>`);
  parts.push(`<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}" fill="none" stroke="#333333"/>`);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="${FONT}">${parts.join('')}</svg>`;
  return new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());
}
