export * from './catalog';
export {
  checkSourcePredictability,
  confoundWarnings,
  IMAGE_STATISTICS,
  imageStatistics,
  sourcePredictability,
  type PredictabilityScore,
  type SourcePredictabilityReport,
} from './confounds';
export { mapLimit } from './concurrency';
export { DatasetError } from './errors';
export { dropDuplicates, importFolderDataset, type FolderImportOptions } from './folder-import';
export { loadImages, loadManifest, loadMasks, selectItems, verifyManifest, type ImageSelection, type LabelledImages, type ManifestVerification } from './load';
export * from './manifest';
export { CROP_POLICY, DEGRADE_KERNELS, RESIZE_KERNEL, preprocessImage, preprocessMask, type PreprocessOptions } from './preprocess';
export {
  cohenFindingClass,
  importCohenCovidCollection,
  importNihChestXray14,
  mergeImports,
  NIH_FINDINGS,
  type CohenImportOptions,
  type NihImportOptions,
  type PublicImportOptions,
} from './public-import';
export { sampleCatalog, sampleDataset, type SampleCatalogOptions, type SampleDatasetOptions, type SampleProgress, type SampleResult } from './sample';
export { assignFolds, assignSets, capPerClass, checkSplitIntegrity, splitDataA, type SetAssignment, type SetAssignmentOptions, type SetAssignmentRule, type SplitItem } from './split';
export { generateSyntheticDataset, type SyntheticDatasetOptions, type SyntheticDatasetResult } from './synthetic';
export { PAPER_OTHER_DISEASE_FINDINGS, PAPER_SIZES, paperSizes, selectPaperSubsets, type PaperSelection, type PaperSizes } from './paper-sizes';
export {
  checkNearDuplicateLeakage,
  compareFingerprints,
  detectNearDuplicates,
  findNearDuplicatePairs,
  fingerprintImage,
  fingerprintPixels,
  mergeNearDuplicatePatients,
  NEAR_DUPLICATE_METHOD,
  NEAR_DUPLICATE_THRESHOLDS,
  SYNTHETIC_SOURCE,
  type ImageFingerprint,
  type MergedPatientGroup,
  type NearDuplicatePair,
  type PlacedImage,
} from './near-duplicates';
export { manifestSummary, measurePreprocessing, type ManifestSummary } from './summary';
export { importSources, sampleSources, type ImportSpec, type SampleSourcesOptions } from './import-sources';
