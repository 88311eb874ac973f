/** `0.6125` → `61.3%`. */
export function percent(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '–' : `${(value * 100).toFixed(digits)}%`;
}

/** Mean ± std of fold accuracies, in percent. */
export function meanStd(mean: number | null | undefined, std: number | null | undefined): string {
  if (mean === null || mean === undefined) return '–';
  return `${percent(mean)} ± ${std === null || std === undefined ? '–' : (std * 100).toFixed(1)}`;
}

/** Milliseconds as `1 h 02 m`, `3 m 05 s` or `4.2 s`. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} m ${String(Math.round(seconds % 60)).padStart(2, '0')} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} m`;
}

/** An ISO timestamp as `2026-12-02 01:05` (UTC, so shared links read the same everywhere). */
export function timestamp(iso: string | null | undefined): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : '–';
}

/** Any config value as short text. */
export function configValue(value: unknown): string {
  if (value === null || value === undefined) return '—';
  return typeof value === 'string' ? value : JSON.stringify(value);
}
