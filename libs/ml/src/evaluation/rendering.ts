/**
 * The report's pictures as PNG bytes: Grad-CAM overlays, the confusion-matrix heatmap and learning
 * curves. Charts are drawn as SVG and rasterised by sharp (librsvg), which also renders their text
 * through fontconfig; any installed sans-serif font will do (DejaVu Sans on these machines).
 */
import sharp from 'sharp';

const FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";

/**
 * Jet-like colour map (blue → cyan → green → yellow → red), the usual Grad-CAM palette.
 *
 * @param t - heat in [0, 1]; values outside are clamped
 * @returns [r, g, b], each 0–255
 */
export function jetColor(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const channel = (centre: number) => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x - centre))));
  return [channel(3), channel(2), channel(1)];
}

/** Options of {@link renderGradCamOverlay}. */
export interface OverlayOptions {
  /** Opacity of the colour map where the heat is 1 (default 0.5). */
  alpha?: number;
  /** The image is enlarged by an integer factor to at least this side (default 256 px). */
  minDisplaySize?: number;
}

/**
 * The grey X-ray with the Grad-CAM heatmap laid over it in jet colours, enlarged for viewing.
 *
 * Each pixel's colour opacity is `alpha × heat`, not a constant: cold regions show the untouched
 * X-ray instead of a blue cast, so a map with no evidence (all zeros, as the paper expects for
 * normal images) leaves the image as it was.
 *
 * @param pixels - size × size grey values, row-major
 * @param heatmap - size × size values in [0, 1] (e.g. `GradCamResult.heatmap`)
 * @returns PNG bytes, RGB, side = size × ceil(minDisplaySize / size)
 */
export async function renderGradCamOverlay(
  pixels: Uint8Array,
  size: number,
  heatmap: ArrayLike<number>,
  options: OverlayOptions = {},
): Promise<Uint8Array> {
  const alpha = options.alpha ?? 0.5;
  const minDisplaySize = options.minDisplaySize ?? 256;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  if (pixels.length !== size * size) throw new RangeError(`expected ${size * size} pixels, got ${pixels.length}`);
  if (heatmap.length !== size * size) throw new RangeError(`expected ${size * size} heatmap values, got ${heatmap.length}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`alpha must lie in [0, 1], got ${alpha}`);
  const rgb = new Uint8Array(size * size * 3);
  for (let i = 0; i < size * size; i++) {
    const heat = Math.min(1, Math.max(0, heatmap[i] ?? 0));
    const colour = jetColor(heat);
    const a = alpha * heat;
    const grey = pixels[i] as number;
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = Math.round(grey * (1 - a) + (colour[c] as number) * a);
  }
  const side = size * Math.max(1, Math.ceil(minDisplaySize / size));
  const png = await sharp(rgb, { raw: { width: size, height: size, channels: 3 } })
    .resize(side, side, { kernel: 'cubic' })
    .png()
    .toBuffer();
  return new Uint8Array(png);
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string);
}

async function svgToPng(svg: string): Promise<Uint8Array> {
  return new Uint8Array(await sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).png().toBuffer());
}

/** Options of {@link renderConfusionMatrixPng}. */
export interface ConfusionMatrixPngOptions {
  /** Heading above the matrix (default "Confusion matrix"). */
  title?: string;
  /** Side of one cell in px (default 96). */
  cellSize?: number;
}

/**
 * The confusion matrix (rows = actual, columns = predicted) as a heatmap with the count and the row
 * percentage in every cell. Colour follows the row fraction (recall for the diagonal), so classes of
 * different sizes compare fairly; the counts are the numbers the paper prints.
 *
 * @returns PNG bytes
 * @throws RangeError when the matrix is not square or the names do not match it
 */
export async function renderConfusionMatrixPng(
  matrix: readonly (readonly number[])[],
  classNames: readonly string[],
  options: ConfusionMatrixPngOptions = {},
): Promise<Uint8Array> {
  const n = matrix.length;
  if (n === 0 || matrix.some((row) => row.length !== n)) throw new RangeError('confusion matrix must be square and non-empty');
  if (classNames.length !== n) throw new RangeError(`${classNames.length} class names for a ${n}x${n} matrix`);
  const cell = options.cellSize ?? 96;
  const title = options.title ?? 'Confusion matrix';
  const longest = Math.max(...classNames.map((name) => name.length));
  const left = 56 + Math.ceil(longest * 8.5);
  const top = 64;
  const bottom = 48 + Math.ceil(longest * 5);
  const width = left + n * cell + 24;
  const height = top + n * cell + bottom;
  const parts: string[] = [];
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${width / 2}" y="30" text-anchor="middle" font-size="20" font-weight="bold">${escapeXml(title)}</text>`);
  matrix.forEach((row, r) => {
    const total = row.reduce((s, v) => s + v, 0);
    row.forEach((count, c) => {
      const fraction = total === 0 ? 0 : count / total;
      // White → dark blue; the text flips to white where the fill gets dark.
      const shade = (from: number, to: number) => Math.round(from + (to - from) * fraction);
      const fill = `rgb(${shade(247, 8)},${shade(251, 48)},${shade(255, 107)})`;
      const ink = fraction > 0.5 ? '#ffffff' : '#111111';
      const x = left + c * cell;
      const y = top + r * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}" stroke="#888888" stroke-width="1"/>`);
      parts.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" font-size="${Math.round(cell / 4)}" font-weight="bold" fill="${ink}">${count}</text>`);
      parts.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + cell / 4}" text-anchor="middle" font-size="${Math.round(cell / 8)}" fill="${ink}">${(fraction * 100).toFixed(1)}%</text>`);
    });
  });
  classNames.forEach((name, i) => {
    const centre = top + i * cell + cell / 2;
    parts.push(`<text x="${left - 8}" y="${centre + 5}" text-anchor="end" font-size="14">${escapeXml(name)}</text>`);
    const cx = left + i * cell + cell / 2;
    const cy = top + n * cell + 12;
    parts.push(`<text x="${cx}" y="${cy}" text-anchor="end" font-size="14" transform="rotate(-35 ${cx} ${cy})">${escapeXml(name)}</text>`);
  });
  parts.push(`<text x="${left + (n * cell) / 2}" y="${height - 12}" text-anchor="middle" font-size="15">predicted</text>`);
  parts.push(`<text x="18" y="${top + (n * cell) / 2}" text-anchor="middle" font-size="15" transform="rotate(-90 18 ${top + (n * cell) / 2})">actual</text>`);
  return svgToPng(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="${FONT}">${parts.join('')}</svg>`);
}

/** One line of a learning-curve chart. */
export interface CurveSeries {
  name: string;
  points: readonly { epoch: number; value: number }[];
}

/** Options of {@link renderLearningCurvesPng}. */
export interface LearningCurvesOptions {
  title: string;
  yLabel: string;
  /** Default "epoch". */
  xLabel?: string;
  /** Default 800 × 480 px. */
  width?: number;
  height?: number;
  /** Fix the value axis (e.g. 0–1 for accuracy); default: the data range, padded to round ticks. */
  yMin?: number;
  yMax?: number;
}

/** Distinct line colours (Tableau 10), cycled. */
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** Round tick positions covering [lo, hi]: steps of 1, 2 or 5 × 10^k, about `count` of them. */
function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const first = Math.floor(lo / step + 1e-9);
  const ticks: number[] = [];
  // Integer multiples of the step avoid drift from repeated float addition; the last tick is ≥ hi.
  for (let k = first; ticks.length < 2 || (ticks.at(-1) as number) < hi - step * 1e-9; k++) {
    ticks.push(Number((k * step).toPrecision(12)));
  }
  return ticks;
}

function formatTick(value: number): string {
  return Math.abs(value) >= 1000 || (Math.abs(value) < 0.01 && value !== 0) ? value.toExponential(1) : String(Number(value.toPrecision(4)));
}

/**
 * Line chart of per-epoch values (loss, accuracy, …), one coloured line per series with a legend.
 * Points are drawn in epoch order; non-finite values are skipped (a diverged loss leaves a gap rather
 * than wrecking the axis).
 *
 * @returns PNG bytes
 * @throws RangeError when no series has a finite point
 */
export async function renderLearningCurvesPng(
  series: readonly CurveSeries[],
  options: LearningCurvesOptions,
): Promise<Uint8Array> {
  const width = options.width ?? 800;
  const height = options.height ?? 480;
  const clean = series.map((s) => ({
    name: s.name,
    points: s.points.filter((p) => Number.isFinite(p.epoch) && Number.isFinite(p.value)).sort((a, b) => a.epoch - b.epoch),
  }));
  const all = clean.flatMap((s) => s.points);
  if (all.length === 0) throw new RangeError('no finite points to plot');
  const epochs = all.map((p) => p.epoch);
  const values = all.map((p) => p.value);
  const xTicks = niceTicks(Math.min(...epochs), Math.max(...epochs), 8);
  const yTicks = niceTicks(options.yMin ?? Math.min(...values), options.yMax ?? Math.max(...values), 6);
  const x0 = xTicks[0] as number;
  const x1 = xTicks.at(-1) as number;
  const y0 = options.yMin ?? (yTicks[0] as number);
  const y1 = options.yMax ?? (yTicks.at(-1) as number);
  const plot = { left: 80, top: 50, right: width - 180, bottom: height - 60 };
  const px = (epoch: number) => plot.left + ((epoch - x0) / (x1 - x0 || 1)) * (plot.right - plot.left);
  const py = (value: number) => plot.bottom - ((value - y0) / (y1 - y0 || 1)) * (plot.bottom - plot.top);
  const parts: string[] = [];
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${(plot.left + plot.right) / 2}" y="30" text-anchor="middle" font-size="18" font-weight="bold">${escapeXml(options.title)}</text>`);
  for (const t of yTicks) {
    if (t < y0 - 1e-12 || t > y1 + 1e-12) continue;
    const y = py(t).toFixed(1);
    parts.push(`<line x1="${plot.left}" y1="${y}" x2="${plot.right}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${plot.left - 8}" y="${Number(y) + 4}" text-anchor="end" font-size="12">${formatTick(t)}</text>`);
  }
  for (const t of xTicks) {
    const x = px(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${plot.top}" x2="${x}" y2="${plot.bottom}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${x}" y="${plot.bottom + 18}" text-anchor="middle" font-size="12">${formatTick(t)}</text>`);
  }
  parts.push(`<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}" fill="none" stroke="#333333"/>`);
  parts.push(`<text x="${(plot.left + plot.right) / 2}" y="${height - 18}" text-anchor="middle" font-size="14">${escapeXml(options.xLabel ?? 'epoch')}</text>`);
  const midY = (plot.top + plot.bottom) / 2;
  parts.push(`<text x="22" y="${midY}" text-anchor="middle" font-size="14" transform="rotate(-90 22 ${midY})">${escapeXml(options.yLabel)}</text>`);
  parts.push(`<clipPath id="plot"><rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}"/></clipPath>`);
  clean.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length] as string;
    const coords = s.points.map((p) => `${px(p.epoch).toFixed(1)},${py(p.value).toFixed(1)}`);
    if (coords.length > 1) {
      parts.push(`<polyline clip-path="url(#plot)" points="${coords.join(' ')}" fill="none" stroke="${colour}" stroke-width="2.5" stroke-linejoin="round"/>`);
    }
    // Markers keep single-epoch runs and sparse series visible.
    for (const c of coords) {
      const [cx, cy] = c.split(',');
      parts.push(`<circle clip-path="url(#plot)" cx="${cx}" cy="${cy}" r="3" fill="${colour}"/>`);
    }
    const ly = plot.top + 12 + i * 22;
    parts.push(`<line x1="${plot.right + 16}" y1="${ly}" x2="${plot.right + 44}" y2="${ly}" stroke="${colour}" stroke-width="3"/>`);
    parts.push(`<text x="${plot.right + 52}" y="${ly + 5}" font-size="13">${escapeXml(s.name)}</text>`);
  });
  return svgToPng(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="${FONT}">${parts.join('')}</svg>`);
}
