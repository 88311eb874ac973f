import type { DataBClass, ExperimentConfig } from '@detl/config';
import type { ObjectStore } from '@detl/storage';
import type { ImportResult } from './catalog';
import { importFolderDataset } from './folder-import';
import { paperSizes, selectPaperSubsets } from './paper-sizes';
import { importCohenCovidCollection, importNihChestXray14, mergeImports } from './public-import';
import { sampleCatalog, type SampleProgress, type SampleResult } from './sample';

/** One dataset to import, as a CLI or a config file would name it. */
export type ImportSpec =
  | { kind: 'folder'; root: string }
  | { kind: 'nih'; csvPath: string; imagesRoot: string; listFiles?: string[]; views?: string[] }
  | { kind: 'cohen'; metadataPath: string; imagesRoot: string; findingClasses?: Record<string, DataBClass | null>; views?: string[] };

/**
 * Imports every spec with the matching importer and merges the results (cross-source copies are
 * dropped as duplicates).
 * @throws DatasetError from the first importer that finds a problem.
 */
export async function importSources(
  specs: readonly ImportSpec[],
  options: { onCorruptImage: ExperimentConfig['dataset']['onCorruptImage']; onMissingImage?: 'fail' | 'skip'; onProgress?: SampleProgress },
): Promise<ImportResult> {
  const results: ImportResult[] = [];
  const common = { onCorruptImage: options.onCorruptImage, ...(options.onProgress ? { onProgress: options.onProgress } : {}) };
  const missing = options.onMissingImage ? { onMissingImage: options.onMissingImage } : {};
  for (const spec of specs) {
    switch (spec.kind) {
      case 'folder':
        results.push(await importFolderDataset(spec.root, common));
        break;
      case 'nih':
        results.push(await importNihChestXray14({ ...common, ...missing, ...spec }));
        break;
      case 'cohen':
        results.push(await importCohenCovidCollection({ ...common, ...missing, ...spec }));
        break;
    }
  }
  return mergeImports(...results);
}

/** Arguments of {@link sampleSources}. */
export interface SampleSourcesOptions {
  sources: readonly ImportSpec[];
  config: ExperimentConfig;
  store: ObjectStore;
  /**
   * Select the paper's Data-A / Data-B sizes times `scale` (see `selectPaperSubsets`), with the
   * balanced Data-A validation set; omitted: the config's sampling rules on everything imported.
   */
  paper?: { scale: number; strict?: boolean };
  onMissingImage?: 'fail' | 'skip';
  confounds?: { excludeSources?: readonly string[]; excludeLowResolution?: boolean; stratifyBySource?: boolean };
  onProgress?: SampleProgress;
}

/**
 * Imports public datasets (NIH ChestX-ray14, the Cohen COVID-19 collection, folders), optionally
 * picks the paper's set sizes, and samples, preprocesses and stores them like `sampleDataset`. The
 * manifest records the import specs and the paper selection as its `source`.
 * @throws DatasetError for any import, selection (under `strict`) or sampling problem.
 */
export async function sampleSources(options: SampleSourcesOptions): Promise<SampleResult> {
  const imported = await importSources(options.sources, {
    onCorruptImage: options.config.dataset.onCorruptImage,
    ...(options.onMissingImage ? { onMissingImage: options.onMissingImage } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  let catalog = imported.catalog;
  const warnings = [...imported.warnings];
  const sizes = options.paper ? paperSizes(options.paper.scale) : null;
  if (options.paper && sizes) {
    const selection = selectPaperSubsets(catalog, { sizes, seed: options.config.seed, strict: options.paper.strict ?? false });
    catalog = selection.catalog;
    warnings.push(...selection.warnings);
  }
  return sampleCatalog({
    catalog,
    config: options.config,
    store: options.store,
    skipped: imported.skipped,
    duplicates: imported.duplicates,
    warnings,
    sourceDescription: { kind: 'import', sources: options.sources, paper: options.paper ?? null },
    ...(options.confounds ? { confounds: options.confounds } : {}),
    ...(sizes ? { dataAValidation: sizes.dataAValidation } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}
