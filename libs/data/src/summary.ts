import { readFile } from 'node:fs/promises';
import type { DatasetManifest } from './manifest';
import { preprocessImage, type PreprocessOptions } from './preprocess';
import { compareStrings } from './random';

/** Counts of a manifest for reports and the CLI: per Data-B fold and class, per Data-A split and class, per source. */
export interface ManifestSummary {
  /** `dataB[fold][className]` image counts. */
  dataB: Record<string, number>[];
  /** Patients per Data-B fold. */
  dataBPatients: number[];
  dataA: { train: Record<string, number>; validation: Record<string, number> };
  /** Images per source and set (`A` / `B`). */
  sources: Record<string, { A: number; B: number }>;
  shards: { count: number; bytes: number };
}

/** Summarises a manifest (pure; no store access). */
export function manifestSummary(manifest: DatasetManifest): ManifestSummary {
  const folds = Math.max(0, ...manifest.items.map((i) => (i.fold ?? -1) + 1));
  const dataB = Array.from({ length: folds }, () => Object.fromEntries(manifest.classes.dataB.map((c) => [c, 0])) as Record<string, number>);
  const patients = Array.from({ length: folds }, () => new Set<string>());
  const dataA = {
    train: Object.fromEntries(manifest.classes.dataA.map((c) => [c, 0])) as Record<string, number>,
    validation: Object.fromEntries(manifest.classes.dataA.map((c) => [c, 0])) as Record<string, number>,
  };
  const sources: Record<string, { A: number; B: number }> = {};
  for (const item of [...manifest.items].sort((a, b) => compareStrings(a.source, b.source))) {
    const source = (sources[item.source] ??= { A: 0, B: 0 });
    source[item.set] += 1;
    if (item.set === 'B' && item.fold !== undefined) {
      const fold = dataB[item.fold];
      if (fold) fold[item.className] = (fold[item.className] ?? 0) + 1;
      patients[item.fold]?.add(item.patientId);
    } else if (item.set === 'A' && item.split) {
      const split = dataA[item.split];
      split[item.className] = (split[item.className] ?? 0) + 1;
    }
  }
  return {
    dataB,
    dataBPatients: patients.map((p) => p.size),
    dataA,
    sources,
    shards: { count: manifest.shards.length, bytes: manifest.shards.reduce((a, s) => a + s.sizeBytes, 0) },
  };
}

/**
 * Times read + decode + preprocess of the given files one after another (single stream, the way a
 * benchmark compares libraries), after one warm-up image.
 * @returns images per second of wall time.
 */
export async function measurePreprocessing(paths: readonly string[], options: PreprocessOptions): Promise<{ images: number; seconds: number; imagesPerSecond: number }> {
  const first = paths[0];
  if (first) await preprocessImage(await readFile(first), options);
  const start = process.hrtime.bigint();
  for (const file of paths) await preprocessImage(await readFile(file), options);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { images: paths.length, seconds, imagesPerSecond: paths.length / seconds };
}
