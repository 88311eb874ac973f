import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { DATA_A_CLASSES, DATA_B_CLASSES, type ExperimentConfig } from '@detl/config';
import { manifestKey as manifestKeyOf, nearDuplicatesKey, samplingInputsKey, shardKey, type ObjectStore, type StoredObject } from '@detl/storage';
import type { CatalogEntry, DuplicateGroup, SkippedFile } from './catalog';
import { mapLimit } from './concurrency';
import { confoundWarnings } from './confounds';
import { DatasetError } from './errors';
import { importFolderDataset } from './folder-import';
import { loadManifest, verifyManifest } from './load';
import { manifestSummary } from './summary';
import { datasetManifestSchema, MANIFEST_CLASSES, MANIFEST_VERSION, MAX_SHARD_BYTES, type DatasetManifest, type ManifestItem, type ManifestShard } from './manifest';
import { CROP_POLICY, DEGRADE_KERNELS, preprocessImage, preprocessMask, RESIZE_KERNEL } from './preprocess';
import { checkNearDuplicateLeakage, detectNearDuplicates, mergeNearDuplicatePatients, NEAR_DUPLICATE_METHOD, SYNTHETIC_SOURCE, type MergedPatientGroup, type NearDuplicatePair } from './near-duplicates';
import { compareStrings, sha256Hex } from './random';
import { assignFolds, assignSets, capPerClass, checkSplitIntegrity, splitDataA } from './split';
import { SYNTHETIC_GENERATOR_VERSION, generateSyntheticDataset } from './synthetic';

/** Progress report: `done` of `total` units of the named phase (generate, import, preprocess, upload). */
export type SampleProgress = (progress: { phase: string; done: number; total: number }) => void;

/** Arguments of {@link sampleDataset}. */
export interface SampleDatasetOptions {
  config: ExperimentConfig;
  store: ObjectStore;
  /** Local folder for generated synthetic datasets (cached by parameters and seed). */
  workDir: string;
  onProgress?: SampleProgress;
}

/** What a sampling wrote and how it went. */
export interface SampleResult {
  manifestKey: string;
  manifest: DatasetManifest;
  counts: { dataB: Record<string, number>; dataA: { train: number; validation: number } };
  /** Shards uploaded by this call. */
  shardsWritten: number;
  /** Shards that already existed in the store with the right size and were not uploaded again. */
  shardsReused: number;
  /**
   * Every object this call wrote: new shards, the manifest, and the input pointer
   * `manifests/inputs/<fingerprint>.txt` (holds the manifest key; lets an identical re-run skip
   * preprocessing). Reused shards are not rewritten, so a fully reused sampling writes nothing.
   */
  stored: StoredObject[];
  skipped: SkippedFile[];
  warnings: string[];
}

/** Size at which synthetic images are generated: at least 128 px, so resizing to the input size only ever shrinks. */
function syntheticSize(config: ExperimentConfig): number {
  return Math.max(128, config.dataset.imageSize);
}

/**
 * Builds Data-A and Data-B for one experiment and stores them: for a synthetic source it generates
 * (or reuses from `workDir`) a dataset first; for a folder source it imports `source.root`. Then it
 * samples (see {@link sampleCatalog}), preprocesses, writes shards and finally the manifest.
 * @throws DatasetError for any data problem (naming file, CSV line / column, or class).
 */
export async function sampleDataset(options: SampleDatasetOptions): Promise<SampleResult> {
  const { config, workDir, onProgress } = options;
  const source = config.dataset.source;
  if (source.kind === 'manifest') return useStoredManifest(config, options.store, source.key);
  let root: string;
  if (source.kind === 'synthetic') {
    root = await ensureSyntheticDataset(config, workDir, onProgress);
  } else {
    root = source.root;
  }
  const imported = await importFolderDataset(root, {
    onCorruptImage: config.dataset.onCorruptImage,
    cacheFile: path.join(workDir, 'import-cache', `${sha256Hex(path.resolve(root)).slice(0, 16)}.json`),
    ...(onProgress ? { onProgress } : {}),
  });
  return sampleCatalog({
    catalog: imported.catalog,
    config,
    store: options.store,
    skipped: imported.skipped,
    duplicates: imported.duplicates,
    warnings: imported.warnings,
    ...(onProgress ? { onProgress } : {}),
  });
}

async function ensureSyntheticDataset(config: ExperimentConfig, workDir: string, onProgress?: SampleProgress): Promise<string> {
  const source = config.dataset.source;
  if (source.kind !== 'synthetic') throw new Error('not a synthetic source');
  const parameters = {
    generator: SYNTHETIC_GENERATOR_VERSION,
    seed: config.seed,
    imageSize: syntheticSize(config),
    dataB: { normal: source.imagesPerClass, pneumonia: source.imagesPerClass, other_disease: source.imagesPerClass, covid: source.imagesPerClass },
    dataA: { normal: source.pretrainImagesPerClass, diseased: source.pretrainImagesPerClass },
  };
  const root = path.join(workDir, 'synthetic', sha256Hex(JSON.stringify(parameters)).slice(0, 16));
  // labels.csv is written last by the generator, so its presence means a complete earlier run.
  if (await stat(path.join(root, 'labels.csv')).catch(() => null)) return root;
  const total = Object.values(parameters.dataB).reduce((a, b) => a + b, 0) + parameters.dataA.normal + parameters.dataA.diseased;
  onProgress?.({ phase: 'generate', done: 0, total });
  const temporary = `${root}.partial-${process.pid}-${Date.now()}`;
  await mkdir(path.dirname(root), { recursive: true });
  await generateSyntheticDataset({ root: temporary, seed: config.seed, imageSize: parameters.imageSize, dataB: parameters.dataB, dataA: parameters.dataA });
  await rm(root, { recursive: true, force: true });
  try {
    await rename(temporary, root);
  } catch (error) {
    // Another worker finished the same generation first; its copy is identical.
    if (!(await stat(path.join(root, 'labels.csv')).catch(() => null))) throw error;
    await rm(temporary, { recursive: true, force: true });
  }
  onProgress?.({ phase: 'generate', done: total, total });
  return root;
}

/**
 * A sampling made earlier (e.g. by `detl data import`): verified shard by shard, checked against
 * the experiment's image size and fold count, and used as it is.
 * @throws DatasetError naming the manifest and what does not match.
 */
async function useStoredManifest(config: ExperimentConfig, store: ObjectStore, key: string): Promise<SampleResult> {
  const verification = await verifyManifest(store, key);
  if (verification.problems.length > 0) {
    throw new DatasetError(`${store.uri(key)} failed verification:\n  ${verification.problems.join('\n  ')}`, { file: key });
  }
  const manifest = await loadManifest(store, key);
  const summary = manifestSummary(manifest);
  const mismatches: string[] = [];
  if (manifest.imageSize !== config.dataset.imageSize) mismatches.push(`image size ${manifest.imageSize} px, the experiment's dataset.imageSize is ${config.dataset.imageSize}`);
  if (summary.dataB.length !== config.dataset.folds) mismatches.push(`${summary.dataB.length} folds, the experiment's dataset.folds is ${config.dataset.folds}`);
  const dataAImages = manifest.items.filter((item) => item.set === 'A').length;
  if (dataAImages === 0 && config.fineTune.freeze !== 'scratch') mismatches.push(`no Data-A images (sampled with dataset.dataB 'all'), and fineTune.freeze '${config.fineTune.freeze}' needs pretraining`);
  if (mismatches.length > 0) throw new DatasetError(`${store.uri(key)} has ${mismatches.join('; ')}`, { file: key });
  const dataB: Record<string, number> = {};
  for (const fold of summary.dataB) for (const [className, count] of Object.entries(fold)) dataB[className] = (dataB[className] ?? 0) + count;
  const sum = (counts: Record<string, number>) => Object.values(counts).reduce((total, count) => total + count, 0);
  return {
    manifestKey: key,
    manifest,
    counts: { dataB, dataA: { train: sum(summary.dataA.train), validation: sum(summary.dataA.validation) } },
    shardsWritten: 0,
    shardsReused: manifest.shards.length,
    stored: [],
    skipped: manifest.skipped,
    warnings: [],
  };
}

/** Arguments of {@link sampleCatalog}: an already imported catalog plus what its importer reported. */
export interface SampleCatalogOptions {
  catalog: readonly CatalogEntry[];
  config: ExperimentConfig;
  store: ObjectStore;
  skipped?: readonly SkippedFile[];
  duplicates?: readonly DuplicateGroup[];
  warnings?: readonly string[];
  onProgress?: SampleProgress;
  /**
   * Shortcut removal on top of `dataset.degradeToPixels`: leave out whole sources, or every image
   * from a low-resolution original; `stratifyBySource` balances each class's sources over the folds.
   * Recorded in the manifest's options.
   */
  confounds?: { excludeSources?: readonly string[]; excludeLowResolution?: boolean; stratifyBySource?: boolean };
  /**
   * Data-A validation size in images per class (the paper: 10,000 + 10,000, balanced) instead of
   * `dataset.pretrainValidationShare` of each class's patients. Recorded in the manifest.
   */
  dataAValidation?: { normal: number; diseased: number };
  /** Largest shard in bytes (default {@link MAX_SHARD_BYTES}); partitions beyond it are cut into several shards. */
  maxShardBytes?: number;
  /** What to record as `options.source` instead of `config.dataset.source` (e.g. the NIH + Cohen import paths). */
  sourceDescription?: unknown;
}

interface PlannedItem {
  entry: CatalogEntry;
  set: 'A' | 'B';
  fold?: number;
  split?: 'train' | 'validation';
  partition: string;
}

/** Everything decided before a single shard is written: which image goes where, and under which options. */
interface SamplingPlan {
  items: PlannedItem[];
  /** Recorded as the manifest's `options`. */
  manifestOptions: Record<string, unknown>;
  nearDuplicates: NearDuplicateReport;
  /** `manifests/inputs/<fingerprint>.txt`: where an identical earlier sampling left its manifest key. */
  pointerKey: string;
  warnings: string[];
  skipped: SkippedFile[];
  /** Objects planning wrote (the stored near-duplicate search, when it ran). */
  stored: StoredObject[];
}

/** What the sampler found and did about near-duplicate images (recorded in the manifest). */
type NearDuplicateReport = DatasetManifest['nearDuplicates'];

/** Shards written (or found) for a plan, and the manifest items pointing into them. */
interface WrittenShards {
  items: ManifestItem[];
  shards: ManifestShard[];
  stored: StoredObject[];
  shardsWritten: number;
  shardsReused: number;
  /** Images that failed preprocessing under `onCorruptImage: 'skip'`, added to the plan's skipped list. */
  skipped: SkippedFile[];
  /** Preprocess-and-store steps taken (one per chunk), for the upload progress. */
  chunks: number;
}

/**
 * Samples Data-B (4 classes, at most `maxImagesPerClass` each, `folds` patient-grouped folds
 * stratified by class) and Data-A (normal vs diseased = other_disease, split into training and
 * validation by patient) from a catalog, preprocesses every image with sharp, and writes
 * content-addressed shards, then the manifest, to the store. Near-duplicate images (same picture,
 * other bytes) get one patient group before any split. Shards already in the store (same key,
 * same size) are not uploaded again. Same catalog + config → byte-identical manifest.
 *
 * Four steps: {@link planSampling} (sets, folds, leak checks, input fingerprint) →
 * {@link reuseEarlierSampling} (same fingerprint: done) → {@link writeShards} → {@link writeManifest}.
 * @throws DatasetError on a leak (patient in two folds / in both sets, a near-duplicate across a
 *   split), a class with fewer patients than folds, an empty Data-A class when Data-A is needed, or
 *   an unreadable image under `onCorruptImage: 'fail'`.
 */
export async function sampleCatalog(options: SampleCatalogOptions): Promise<SampleResult> {
  const plan = await planSampling(options);
  const cached = await reuseEarlierSampling(options.store, plan.pointerKey);
  if (cached) {
    options.onProgress?.({ phase: 'preprocess', done: plan.items.length, total: plan.items.length });
    const warnings = [...plan.warnings, `same inputs as ${cached.manifestKey}: all ${cached.manifest.shards.length} shards reused, nothing preprocessed`];
    return { ...cached, ...summarise(cached.manifest), shardsWritten: 0, shardsReused: cached.manifest.shards.length, stored: plan.stored, skipped: cached.manifest.skipped, warnings };
  }
  const written = await writeShards(plan, options);
  return writeManifest(plan, written, options);
}

/**
 * Decides where every image goes: source / resolution filters, near-duplicate merging, Data-A /
 * Data-B assignment, the per-class cap, folds and the Data-A split, each checked for leaks; then
 * fingerprints every input so an identical earlier sampling can be found.
 */
async function planSampling(options: SampleCatalogOptions): Promise<SamplingPlan> {
  const { config } = options;
  const { seed } = config;
  const dataset = config.dataset;
  const warnings = [...(options.warnings ?? [])];
  const excludeSources = [...(options.confounds?.excludeSources ?? [])].sort(compareStrings);
  const excludeLowResolution = options.confounds?.excludeLowResolution ?? false;
  const filtered = options.catalog.filter((entry) => !excludeSources.includes(entry.source) && !(excludeLowResolution && entry.lowResolution === true));
  if (filtered.length < options.catalog.length) {
    warnings.push(`${options.catalog.length - filtered.length} images left out by source / resolution filters (${excludeSources.length} sources excluded, low resolution ${excludeLowResolution ? 'excluded' : 'kept'})`);
  }
  const ids = new Set<string>();
  for (const entry of filtered) {
    if (ids.has(entry.imageId)) throw new DatasetError(`image id "${entry.imageId}" occurs twice in the catalog (${entry.file})`, { file: entry.file });
    ids.add(entry.imageId);
  }

  // Before any split: a near-duplicate pair must share a patient group, or folds could separate it.
  const { pairs, stored } = await nearDuplicatePairs(filtered, options);
  const merging = mergeNearDuplicatePatients(filtered, pairs);
  const { merged } = merging;
  if (pairs.length > 0) {
    warnings.push(
      `${pairs.length} near-duplicate image pair(s) (same picture, other bytes) found after preprocessing; ${merged.length} patient group(s) merged so no pair spans a split (listed in the manifest's nearDuplicates)`,
    );
  }
  const { catalog, leftOut } = dropDataACopiesOfDataB(merging.catalog, merged);
  if (leftOut.length > 0) warnings.push(`${leftOut.length} image(s) the source marks subset A left out: near-duplicates of Data-B images (skipped lists them)`);

  const dataBRule = dataset.dataB;
  const { dataA, dataB, rule } = assignSets(catalog, seed, dataset.pretrainPatientShare, { dataB: dataBRule });
  const sampledB = capPerClass(dataB, dataset.maxImagesPerClass, seed);
  if (sampledB.length < dataB.length) warnings.push(`Data-B capped at ${dataset.maxImagesPerClass} images per class: ${dataB.length - sampledB.length} images left out`);
  for (const label of DATA_B_CLASSES) {
    const have = sampledB.filter((entry) => entry.label === label).length;
    if (dataset.maxImagesPerClass !== null && have < dataset.maxImagesPerClass) {
      warnings.push(`Data-B class "${label}": ${have} images available, fewer than maxImagesPerClass ${dataset.maxImagesPerClass}; using what exists`);
    }
  }
  checkPatientsPerClass(catalog, dataA, sampledB, config);
  const stratifyBySource = options.confounds?.stratifyBySource ?? false;
  const folds = assignFolds(sampledB, dataset.folds, seed, { stratifyBySource });
  warnings.push(...confoundWarnings(sampledB, dataset.degradeToPixels));
  const sortedA = dataA.slice().sort((a, b) => compareStrings(a.imageId, b.imageId));
  // With `dataB: 'all'` nothing is held back for pretraining (the config allows it only for scratch
  // training), so an empty Data-A is expected; an explicit `subset` A in labels.csv still fills it.
  const needsDataA = dataBRule === 'exclude-data-a' || sortedA.length > 0;
  if (needsDataA && (!sortedA.some((e) => e.label === 'normal') || !sortedA.some((e) => e.label === 'other_disease'))) {
    throw new DatasetError(
      `Data-A needs normal and diseased (other_disease) images; it has ${sortedA.filter((e) => e.label === 'normal').length} normal and ${sortedA.filter((e) => e.label === 'other_disease').length} diseased`,
    );
  }
  const splits = needsDataA ? splitDataA(sortedA, dataset.pretrainValidationShare, seed, options.dataAValidation) : new Map<string, 'train' | 'validation'>();

  const items: PlannedItem[] = [];
  for (let k = 0; k < dataset.folds; k += 1) {
    for (const entry of sampledB) if (folds.get(entry.imageId) === k) items.push({ entry, set: 'B', fold: k, partition: `B/fold-${k}` });
  }
  for (const split of ['train', 'validation'] as const) {
    for (const entry of sortedA) if (splits.get(entry.imageId) === split) items.push({ entry, set: 'A', split, partition: `A/${split}` });
  }
  const placed = items.map((p) => ({ set: p.set, imageId: p.entry.imageId, patientId: p.entry.patientId, fold: p.fold, split: p.split }));
  checkSplitIntegrity(placed);
  checkNearDuplicateLeakage(placed, pairs);

  const manifestOptions = {
    source: options.sourceDescription ?? dataset.source,
    excludeSources,
    excludeLowResolution,
    stratifyBySource,
    folds: dataset.folds,
    maxImagesPerClass: dataset.maxImagesPerClass,
    pretrainPatientShare: dataset.pretrainPatientShare,
    pretrainValidationShare: dataset.pretrainValidationShare,
    dataB: dataBRule,
    dataAValidation: options.dataAValidation ?? null,
    onCorruptImage: dataset.onCorruptImage,
    degradeToPixels: dataset.degradeToPixels,
    crop: CROP_POLICY,
    resizeKernel: RESIZE_KERNEL,
    degradeKernels: DEGRADE_KERNELS,
    setAssignment: rule,
    nearDuplicates: NEAR_DUPLICATE_METHOD,
    shardFormat: 'uint8 NxHxW row-major, no header',
    maxShardBytes: options.maxShardBytes ?? MAX_SHARD_BYTES,
  };
  const nearDuplicates: NearDuplicateReport = {
    pairs: pairs.map((pair) => ({ ...pair, correlation: Math.round(pair.correlation * 1000) / 1000 })),
    mergedPatients: merged,
  };

  // Same inputs as an earlier sampling → its manifest and shards are reused without preprocessing a
  // single image. The fingerprint covers every input byte (file and mask hashes), the plan, the
  // options and the preprocessing code version, so any change recomputes.
  const maskHashes = await mapLimit(items, 8, async (item) => (item.entry.maskPath ? sha256Hex(await readFile(item.entry.maskPath)) : null));
  const fingerprint = sha256Hex(
    JSON.stringify({
      preprocessing: PREPROCESSING_VERSION,
      libvips: sharp.versions.vips,
      seed,
      size: dataset.imageSize,
      options: manifestOptions,
      items: items.map((p, i) => [p.partition, p.entry.imageId, p.entry.sha256, p.entry.patientId, p.entry.source, p.entry.file, p.entry.label, maskHashes[i]]),
      skipped: options.skipped ?? [],
      duplicates: options.duplicates ?? [],
      nearDuplicates,
    }),
  );
  return { items, manifestOptions, nearDuplicates, pointerKey: samplingInputsKey(fingerprint), warnings, skipped: [...(options.skipped ?? []), ...leftOut], stored };
}

/**
 * A merged near-duplicate group whose images the source puts on both sides (some marked subset A,
 * others subset B or of a Data-B-only class) cannot be kept whole on either: its subset-A images
 * are left out, so pretraining never learns from a copy of an image the folds test on.
 */
function dropDataACopiesOfDataB(catalog: readonly CatalogEntry[], merged: readonly MergedPatientGroup[]): { catalog: CatalogEntry[]; leftOut: SkippedFile[] } {
  const mergedIds = new Set(merged.map((group) => group.patientId));
  const conflicting = new Set<string>();
  for (const patientId of mergedIds) {
    const group = catalog.filter((entry) => entry.patientId === patientId);
    const inB = group.some((entry) => entry.subset === 'B' || entry.label === 'pneumonia' || entry.label === 'covid');
    if (inB && group.some((entry) => entry.subset === 'A')) conflicting.add(patientId);
  }
  const leftOut: SkippedFile[] = [];
  const kept = catalog.filter((entry) => {
    if (!(conflicting.has(entry.patientId) && entry.subset === 'A')) return true;
    leftOut.push({ path: entry.file, reason: `marked subset A, but a near-duplicate of a Data-B image (patient group ${entry.patientId}): left out so pretraining never sees a copy of a test image` });
    return false;
  });
  return { catalog: kept, leftOut };
}

const storedPairsSchema = datasetManifestSchema.shape.nearDuplicates.unwrap().shape.pairs;

/**
 * The near-duplicate pairs of a catalog's real images. The search decodes every image, so its
 * result is stored under a key derived from the detector version and every image's id and file
 * hash: the experiments of a sweep, and re-runs, find it instead of searching again (cxr-real:
 * minutes on two busy cores). Synthetic-only catalogs need no search and store nothing.
 */
async function nearDuplicatePairs(catalog: readonly CatalogEntry[], options: SampleCatalogOptions): Promise<{ pairs: NearDuplicatePair[]; stored: StoredObject[] }> {
  const { store, onProgress, config } = options;
  const real = catalog.filter((entry) => entry.source !== SYNTHETIC_SOURCE);
  if (real.length === 0) return { pairs: [], stored: [] };
  const images = real.map((entry) => [entry.imageId, entry.sha256]).sort((a, b) => compareStrings(a[0] as string, b[0] as string));
  // Stored by the hash of the method and the images' ids and hashes, so an identical search is read back.
  const key = nearDuplicatesKey(sha256Hex(JSON.stringify({ method: NEAR_DUPLICATE_METHOD, images })));
  if (await store.headObject(key)) {
    let raw: unknown = null;
    try {
      raw = JSON.parse(new TextDecoder().decode(await store.getObject(key)));
    } catch {
      raw = null;
    }
    const parsed = storedPairsSchema.safeParse(raw);
    // A damaged object is searched again and overwritten rather than trusted.
    if (parsed.success) return { pairs: parsed.data, stored: [] };
  }
  const pairs = await detectNearDuplicates(real, {
    onCorruptImage: config.dataset.onCorruptImage,
    readFile: (file) => readFile(file),
    ...(onProgress ? { onProgress: (done: number, total: number) => onProgress({ phase: 'near-duplicates', done, total }) } : {}),
  });
  return { pairs, stored: [await store.putObject(key, JSON.stringify(pairs), 'application/json')] };
}

/**
 * Every class needs at least one Data-B patient per fold. Checked here as well as in assignFolds
 * because only here the full story can be told: how many patients the class has in total and how
 * many went to Data-A.
 * @throws DatasetError naming the class and the counts.
 */
function checkPatientsPerClass(catalog: readonly CatalogEntry[], dataA: readonly CatalogEntry[], sampledB: readonly CatalogEntry[], config: ExperimentConfig): void {
  const { folds, pretrainPatientShare } = config.dataset;
  for (const label of DATA_B_CLASSES) {
    const inB = new Set(sampledB.filter((e) => e.label === label).map((e) => e.patientId));
    if (inB.size >= folds) continue;
    const imagesInB = sampledB.filter((e) => e.label === label).length;
    const all = catalog.filter((e) => e.label === label);
    const inA = new Set(dataA.filter((e) => e.label === label).map((e) => e.patientId));
    throw new DatasetError(
      `class "${label}" has ${inB.size} patient(s) (${imagesInB} images) in Data-B, fewer than the ${folds} folds` +
        ` (the source has ${all.length} ${label} images of ${new Set(all.map((e) => e.patientId)).size} patients` +
        (inA.size > 0 ? `; ${inA.size} of those patients went to Data-A (dataset.pretrainPatientShare ${pretrainPatientShare})` : '') +
        `): every fold needs at least one patient of every class`,
    );
  }
}

/**
 * Preprocesses the plan partition by partition, shard by shard, and stores each shard (unless the
 * store already has it): memory stays at one shard (≤ 64 MiB) however large the sets are.
 */
async function writeShards(plan: SamplingPlan, options: SampleCatalogOptions): Promise<WrittenShards> {
  const { config, store, onProgress } = options;
  const dataset = config.dataset;
  const size = dataset.imageSize;
  const maxShardBytes = options.maxShardBytes ?? MAX_SHARD_BYTES;
  const perShard = Math.max(1, Math.floor(maxShardBytes / (size * size)));
  const chunks: PlannedItem[][] = [];
  for (const partition of [...new Set(plan.items.map((p) => p.partition))]) {
    const members = plan.items.filter((p) => p.partition === partition);
    for (let start = 0; start < members.length; start += perShard) chunks.push(members.slice(start, start + perShard));
  }
  const written: WrittenShards = { items: [], shards: [], stored: [], shardsWritten: 0, shardsReused: 0, skipped: [], chunks: chunks.length };
  let done = 0;
  const storeShard = async (images: readonly Uint8Array[], kind: 'images' | 'masks', partition: string): Promise<ManifestShard> => {
    const { meta, bytes } = packShard(images, size, kind, partition);
    if (written.shards.some((known) => known.key === meta.key)) return meta;
    written.shards.push(meta);
    const existing = await store.headObject(meta.key);
    if (existing && existing.sizeBytes === meta.sizeBytes) written.shardsReused += 1;
    else {
      written.stored.push(await store.putObject(meta.key, bytes, 'application/octet-stream'));
      written.shardsWritten += 1;
    }
    return meta;
  };
  for (const [chunkIndex, chunk] of chunks.entries()) {
    // An image that fails here (it decoded at import) is treated like a corrupt file.
    const pixels = await mapLimit(chunk, 4, async (item) => {
      try {
        const bytes = await readFile(item.entry.path);
        const image = await preprocessImage(bytes, { imageSize: size, degradeToPixels: dataset.degradeToPixels });
        const mask = item.entry.maskPath ? await preprocessMask(await readFile(item.entry.maskPath), size) : null;
        return { item, image, mask };
      } catch (error) {
        const reason = `${item.entry.path}: preprocessing failed (${(error as Error).message})`;
        if (dataset.onCorruptImage === 'fail') throw new DatasetError(reason, { file: item.entry.path });
        written.skipped.push({ path: item.entry.file, reason });
        return null;
      } finally {
        onProgress?.({ phase: 'preprocess', done: (done += 1), total: plan.items.length });
      }
    });
    const kept = pixels.filter((p): p is { item: PlannedItem; image: Uint8Array; mask: Uint8Array | null } => p !== null);
    if (kept.length === 0) continue;
    const partition = kept[0]?.item.partition ?? '';
    const imageShard = await storeShard(kept.map((k) => k.image), 'images', partition);
    const withMask = kept.filter((k) => k.mask !== null);
    const maskShard = withMask.length > 0 ? await storeShard(withMask.map((k) => k.mask as Uint8Array), 'masks', partition) : null;
    onProgress?.({ phase: 'upload', done: chunkIndex + 1, total: chunks.length + 1 });
    let maskIndex = 0;
    kept.forEach((k, index) => {
      written.items.push(manifestItemOf(k.item, imageShard.key, index, maskShard && k.mask ? { maskShardKey: maskShard.key, maskIndex: maskIndex++ } : null));
    });
  }
  return written;
}

/** The manifest's record of one preprocessed image (Data-A labels are normal / diseased). */
function manifestItemOf(item: PlannedItem, shardKey: string, index: number, mask: { maskShardKey: string; maskIndex: number } | null): ManifestItem {
  const entry = item.entry;
  const className = item.set === 'B' ? entry.label : entry.label === 'normal' ? 'normal' : 'diseased';
  const classList: readonly string[] = item.set === 'B' ? DATA_B_CLASSES : DATA_A_CLASSES;
  return {
    set: item.set,
    imageId: entry.imageId,
    className,
    label: classList.indexOf(className),
    patientId: entry.patientId,
    source: entry.source,
    file: entry.file,
    sourceSha256: entry.sha256,
    ...(item.fold !== undefined ? { fold: item.fold } : {}),
    ...(item.split !== undefined ? { split: item.split } : {}),
    shardKey,
    index,
    ...(mask ?? {}),
  };
}

/**
 * Writes the manifest, then the input pointer. The manifest goes after every shard, so once it
 * exists every shard it names exists too; the pointer after the manifest, so it only ever points
 * at complete samplings.
 */
async function writeManifest(plan: SamplingPlan, written: WrittenShards, options: SampleCatalogOptions): Promise<SampleResult> {
  const { config, store, onProgress } = options;
  const warnings = [...plan.warnings];
  const manifest: DatasetManifest = datasetManifestSchema.parse({
    format: 'detl-dataset-manifest',
    version: MANIFEST_VERSION,
    seed: config.seed,
    imageSize: config.dataset.imageSize,
    classes: MANIFEST_CLASSES,
    options: plan.manifestOptions,
    items: written.items,
    shards: written.shards,
    skipped: [...plan.skipped, ...written.skipped].sort((a, b) => compareStrings(a.path, b.path)),
    duplicates: [...(options.duplicates ?? [])],
    nearDuplicates: plan.nearDuplicates,
  });
  if (written.shardsReused > 0) warnings.push(`${written.shardsReused} of ${written.shards.length} shards were already stored and reused`);
  const manifestBytes = JSON.stringify(manifest);
  const manifestKey = manifestKeyOf(sha256Hex(manifestBytes));
  const stored = [...plan.stored, ...written.stored];
  stored.push(await store.putObject(manifestKey, manifestBytes, 'application/json'));
  stored.push(await store.putObject(plan.pointerKey, manifestKey, 'text/plain'));
  onProgress?.({ phase: 'upload', done: written.chunks + 1, total: written.chunks + 1 });
  return {
    manifestKey,
    manifest,
    ...summarise(manifest),
    shardsWritten: written.shardsWritten,
    shardsReused: written.shardsReused,
    stored,
    skipped: manifest.skipped,
    warnings,
  };
}

/** Bumped whenever preprocessing output could change for the same input bytes and options. */
const PREPROCESSING_VERSION = 1;

/** Per-class Data-B counts and Data-A split sizes of a manifest. */
function summarise(manifest: DatasetManifest): Pick<SampleResult, 'counts'> {
  const dataB: Record<string, number> = Object.fromEntries(DATA_B_CLASSES.map((label) => [label, 0]));
  for (const item of manifest.items) if (item.set === 'B') dataB[item.className] = (dataB[item.className] ?? 0) + 1;
  const inA = (split: string): number => manifest.items.filter((i) => i.set === 'A' && i.split === split).length;
  return { counts: { dataB, dataA: { train: inA('train'), validation: inA('validation') } } };
}

/** The manifest an earlier sampling with the same fingerprint wrote, if it and all its shards still exist. */
async function reuseEarlierSampling(store: ObjectStore, pointerKey: string): Promise<{ manifestKey: string; manifest: DatasetManifest } | null> {
  if (!(await store.headObject(pointerKey))) return null;
  const manifestKey = new TextDecoder().decode(await store.getObject(pointerKey)).trim();
  if (!/^manifests\/[0-9a-f]{64}\.json$/.test(manifestKey) || !(await store.headObject(manifestKey))) return null;
  const manifest = await loadManifest(store, manifestKey).catch(() => null);
  if (!manifest) return null;
  for (const shard of manifest.shards) {
    const head = await store.headObject(shard.key);
    if (!head || head.sizeBytes !== shard.sizeBytes) return null;
  }
  return { manifestKey, manifest };
}

function packShard(images: readonly Uint8Array[], size: number, kind: 'images' | 'masks', partition: string): { meta: ManifestShard; bytes: Uint8Array } {
  const bytes = new Uint8Array(images.length * size * size);
  images.forEach((image, index) => bytes.set(image, index * size * size));
  const sha256 = sha256Hex(bytes);
  return { meta: { key: shardKey(sha256), sha256, count: images.length, sizeBytes: bytes.byteLength, kind, partition }, bytes };
}
