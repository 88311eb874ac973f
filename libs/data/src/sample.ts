import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { DATA_A_CLASSES, DATA_B_CLASSES, type ExperimentConfig } from '@detl/config';
import { manifestKey as manifestKeyOf, samplingInputsKey, shardKey, type ObjectStore, type StoredObject } from '@detl/storage';
import type { CatalogEntry, DuplicateGroup, SkippedFile } from './catalog';
import { mapLimit } from './concurrency';
import { confoundWarnings } from './confounds';
import { DatasetError } from './errors';
import { importFolderDataset } from './folder-import';
import { loadManifest, verifyManifest } from './load';
import { manifestSummary } from './summary';
import { datasetManifestSchema, MANIFEST_CLASSES, MANIFEST_VERSION, MAX_SHARD_BYTES, type DatasetManifest, type ManifestItem, type ManifestShard } from './manifest';
import { CROP_POLICY, DEGRADE_KERNELS, preprocessImage, preprocessMask, RESIZE_KERNEL } from './preprocess';
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

/**
 * Samples Data-B (4 classes, at most `maxImagesPerClass` each, `folds` patient-grouped folds
 * stratified by class) and Data-A (normal vs diseased = other_disease, split into training and
 * validation by patient) from a catalog, preprocesses every image with sharp, and writes
 * content-addressed shards, then the manifest, to the store. Shards already in the store (same
 * key, same size) are not uploaded again. Same catalog + config → byte-identical manifest.
 * @throws DatasetError on a leak (patient in two folds / in both sets), a class with fewer patients
 *   than folds, an empty Data-A class, or an unreadable image under `onCorruptImage: 'fail'`.
 */
export async function sampleCatalog(options: SampleCatalogOptions): Promise<SampleResult> {
  const { config, store, onProgress } = options;
  const { seed } = config;
  const dataset = config.dataset;
  const warnings = [...(options.warnings ?? [])];
  const skipped = [...(options.skipped ?? [])];
  const excludeSources = [...(options.confounds?.excludeSources ?? [])].sort(compareStrings);
  const excludeLowResolution = options.confounds?.excludeLowResolution ?? false;
  const catalog = options.catalog.filter((entry) => !excludeSources.includes(entry.source) && !(excludeLowResolution && entry.lowResolution === true));
  if (catalog.length < options.catalog.length) {
    warnings.push(`${options.catalog.length - catalog.length} images left out by source / resolution filters (${excludeSources.length} sources excluded, low resolution ${excludeLowResolution ? 'excluded' : 'kept'})`);
  }
  const ids = new Set<string>();
  for (const entry of catalog) {
    if (ids.has(entry.imageId)) throw new DatasetError(`image id "${entry.imageId}" occurs twice in the catalog (${entry.file})`, { file: entry.file });
    ids.add(entry.imageId);
  }

  const { dataA, dataB, rule } = assignSets(catalog, seed, dataset.pretrainPatientShare);
  const sampledB = capPerClass(dataB, dataset.maxImagesPerClass, seed);
  if (sampledB.length < dataB.length) warnings.push(`Data-B capped at ${dataset.maxImagesPerClass} images per class: ${dataB.length - sampledB.length} images left out`);
  for (const label of DATA_B_CLASSES) {
    const have = sampledB.filter((entry) => entry.label === label).length;
    if (dataset.maxImagesPerClass !== null && have < dataset.maxImagesPerClass) {
      warnings.push(`Data-B class "${label}": ${have} images available, fewer than maxImagesPerClass ${dataset.maxImagesPerClass}; using what exists`);
    }
  }
  // Checked here as well as in assignFolds because only here the full story can be told: how many
  // patients the class has in total and how many went to Data-A.
  for (const label of DATA_B_CLASSES) {
    const inB = new Set(sampledB.filter((e) => e.label === label).map((e) => e.patientId));
    if (inB.size >= dataset.folds) continue;
    const imagesInB = sampledB.filter((e) => e.label === label).length;
    const all = catalog.filter((e) => e.label === label);
    const inA = new Set(dataA.filter((e) => e.label === label).map((e) => e.patientId));
    throw new DatasetError(
      `class "${label}" has ${inB.size} patient(s) (${imagesInB} images) in Data-B, fewer than the ${dataset.folds} folds` +
        ` (the source has ${all.length} ${label} images of ${new Set(all.map((e) => e.patientId)).size} patients` +
        (inA.size > 0 ? `; ${inA.size} of those patients went to Data-A (dataset.pretrainPatientShare ${dataset.pretrainPatientShare})` : '') +
        `): every fold needs at least one patient of every class`,
    );
  }
  const stratifyBySource = options.confounds?.stratifyBySource ?? false;
  const folds = assignFolds(sampledB, dataset.folds, seed, { stratifyBySource });
  warnings.push(...confoundWarnings(sampledB, dataset.degradeToPixels));
  const sortedA = dataA.slice().sort((a, b) => compareStrings(a.imageId, b.imageId));
  if (!sortedA.some((e) => e.label === 'normal') || !sortedA.some((e) => e.label === 'other_disease')) {
    throw new DatasetError(
      `Data-A needs normal and diseased (other_disease) images; it has ${sortedA.filter((e) => e.label === 'normal').length} normal and ${sortedA.filter((e) => e.label === 'other_disease').length} diseased`,
    );
  }
  const splits = splitDataA(sortedA, dataset.pretrainValidationShare, seed, options.dataAValidation);

  const planned: PlannedItem[] = [];
  for (let k = 0; k < dataset.folds; k += 1) {
    for (const entry of sampledB) if (folds.get(entry.imageId) === k) planned.push({ entry, set: 'B', fold: k, partition: `B/fold-${k}` });
  }
  for (const split of ['train', 'validation'] as const) {
    for (const entry of sortedA) if (splits.get(entry.imageId) === split) planned.push({ entry, set: 'A', split, partition: `A/${split}` });
  }
  checkSplitIntegrity(planned.map((p) => ({ set: p.set, imageId: p.entry.imageId, patientId: p.entry.patientId, fold: p.fold, split: p.split })));

  const maxShardBytes = options.maxShardBytes ?? MAX_SHARD_BYTES;
  const manifestOptions = {
    source: options.sourceDescription ?? dataset.source,
    excludeSources,
    excludeLowResolution,
    stratifyBySource,
    folds: dataset.folds,
    maxImagesPerClass: dataset.maxImagesPerClass,
    pretrainPatientShare: dataset.pretrainPatientShare,
    pretrainValidationShare: dataset.pretrainValidationShare,
    dataAValidation: options.dataAValidation ?? null,
    onCorruptImage: dataset.onCorruptImage,
    degradeToPixels: dataset.degradeToPixels,
    crop: CROP_POLICY,
    resizeKernel: RESIZE_KERNEL,
    degradeKernels: DEGRADE_KERNELS,
    setAssignment: rule,
    shardFormat: 'uint8 NxHxW row-major, no header',
    maxShardBytes,
  };

  // Same inputs as an earlier sampling → its manifest and shards are reused without decoding a
  // single image. The fingerprint covers every input byte (file and mask hashes), the plan, the
  // options and the preprocessing code version, so any change recomputes.
  const maskHashes = await mapLimit(planned, 8, async (item) => (item.entry.maskPath ? sha256Hex(await readFile(item.entry.maskPath)) : null));
  const fingerprint = sha256Hex(
    JSON.stringify({
      preprocessing: PREPROCESSING_VERSION,
      libvips: sharp.versions.vips,
      seed,
      size: dataset.imageSize,
      options: manifestOptions,
      items: planned.map((p, i) => [p.partition, p.entry.imageId, p.entry.sha256, p.entry.patientId, p.entry.source, p.entry.file, p.entry.label, maskHashes[i]]),
      skipped: options.skipped ?? [],
      duplicates: options.duplicates ?? [],
    }),
  );
  const pointerKey = samplingInputsKey(fingerprint);
  const cached = await reuseEarlierSampling(store, pointerKey);
  if (cached) {
    onProgress?.({ phase: 'preprocess', done: planned.length, total: planned.length });
    warnings.push(`same inputs as ${cached.manifestKey}: all ${cached.manifest.shards.length} shards reused, nothing preprocessed`);
    return { ...cached, ...summarise(cached.manifest), shardsWritten: 0, shardsReused: cached.manifest.shards.length, stored: [], skipped: cached.manifest.skipped, warnings };
  }

  // Partition by partition, shard by shard: preprocess a chunk, store it, let it go. Memory stays
  // at one shard (≤ 64 MiB) however large the sets are; the manifest still comes last.
  const size = dataset.imageSize;
  const perShard = Math.max(1, Math.floor(maxShardBytes / (size * size)));
  const chunks: PlannedItem[][] = [];
  for (const partition of [...new Set(planned.map((p) => p.partition))]) {
    const members = planned.filter((p) => p.partition === partition);
    for (let start = 0; start < members.length; start += perShard) chunks.push(members.slice(start, start + perShard));
  }
  const items: ManifestItem[] = [];
  const shards: ManifestShard[] = [];
  const stored: StoredObject[] = [];
  let shardsWritten = 0;
  let shardsReused = 0;
  let done = 0;
  const storeShard = async (images: readonly Uint8Array[], kind: 'images' | 'masks', partition: string): Promise<ManifestShard> => {
    const { meta, bytes } = packShard(images, size, kind, partition);
    if (shards.some((known) => known.key === meta.key)) return meta;
    shards.push(meta);
    const existing = await store.headObject(meta.key);
    if (existing && existing.sizeBytes === meta.sizeBytes) shardsReused += 1;
    else {
      stored.push(await store.putObject(meta.key, bytes, 'application/octet-stream'));
      shardsWritten += 1;
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
        skipped.push({ path: item.entry.file, reason });
        return null;
      } finally {
        onProgress?.({ phase: 'preprocess', done: (done += 1), total: planned.length });
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
      const entry = k.item.entry;
      const className = k.item.set === 'B' ? entry.label : entry.label === 'normal' ? 'normal' : 'diseased';
      const classList: readonly string[] = k.item.set === 'B' ? DATA_B_CLASSES : DATA_A_CLASSES;
      items.push({
        set: k.item.set,
        imageId: entry.imageId,
        className,
        label: classList.indexOf(className),
        patientId: entry.patientId,
        source: entry.source,
        file: entry.file,
        sourceSha256: entry.sha256,
        ...(k.item.fold !== undefined ? { fold: k.item.fold } : {}),
        ...(k.item.split !== undefined ? { split: k.item.split } : {}),
        shardKey: imageShard.key,
        index,
        ...(maskShard && k.mask ? { maskShardKey: maskShard.key, maskIndex: maskIndex++ } : {}),
      });
    });
  }

  const manifest: DatasetManifest = datasetManifestSchema.parse({
    format: 'detl-dataset-manifest',
    version: MANIFEST_VERSION,
    seed,
    imageSize: size,
    classes: MANIFEST_CLASSES,
    options: manifestOptions,
    items,
    shards,
    skipped: skipped.sort((a, b) => compareStrings(a.path, b.path)),
    duplicates: [...(options.duplicates ?? [])],
  });
  if (shardsReused > 0) warnings.push(`${shardsReused} of ${shards.length} shards were already stored and reused`);
  // The manifest goes last: once it exists, every shard it names exists too.
  const manifestBytes = JSON.stringify(manifest);
  const manifestKey = manifestKeyOf(sha256Hex(manifestBytes));
  stored.push(await store.putObject(manifestKey, manifestBytes, 'application/json'));
  // The input pointer after the manifest: it may only ever point at complete samplings.
  stored.push(await store.putObject(pointerKey, manifestKey, 'text/plain'));
  onProgress?.({ phase: 'upload', done: chunks.length + 1, total: chunks.length + 1 });

  return {
    manifestKey,
    manifest,
    ...summarise(manifest),
    shardsWritten,
    shardsReused,
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
