import type { LabelledImages } from '@detl/config';
import { parseShardKey, type ObjectStore } from '@detl/storage';
import { DatasetError } from './errors';
import { datasetManifestSchema, type DatasetManifest, type ManifestItem } from './manifest';
import { sha256Hex } from './random';
import { checkNearDuplicateLeakage } from './near-duplicates';
import { checkSplitIntegrity } from './split';

// Images and integer labels, the structure libs/ml trains on: declared once in @detl/config, which both share.
export type { LabelledImages };

/** Which part of a manifest to load: Data-A training / validation, or some Data-B folds. */
export type ImageSelection = { set: 'A'; split: 'train' | 'validation' } | { set: 'B'; folds: number[] };

/**
 * Reads and validates a manifest.
 * @throws DatasetError when the object is not a valid manifest (its key is named).
 */
export async function loadManifest(store: ObjectStore, key: string): Promise<DatasetManifest> {
  const text = new TextDecoder().decode(await store.getObject(key));
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new DatasetError(`${store.uri(key)}: manifest is not JSON (${(error as Error).message})`, { file: key });
  }
  const parsed = datasetManifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new DatasetError(`${store.uri(key)}: not a valid dataset manifest: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, {
      file: key,
    });
  }
  return parsed.data;
}

/** Items of the selection, in manifest order. */
export function selectItems(manifest: DatasetManifest, selection: ImageSelection): ManifestItem[] {
  if (selection.set === 'A') return manifest.items.filter((item) => item.set === 'A' && item.split === selection.split);
  const folds = new Set(selection.folds);
  return manifest.items.filter((item) => item.set === 'B' && item.fold !== undefined && folds.has(item.fold));
}

/**
 * Loads the selected images and their labels (Data-B: indices into normal, pneumonia,
 * other_disease, covid; Data-A: into normal, diseased). Each shard is fetched once and its SHA-256
 * checked against the manifest, so a corrupted or swapped object is caught before training.
 * @throws DatasetError for a shard whose size or hash does not match.
 */
export async function loadImages(store: ObjectStore, manifest: DatasetManifest, selection: ImageSelection): Promise<LabelledImages & { imageIds: string[] }> {
  const items = selectItems(manifest, selection);
  const pixels = await gather(store, manifest, items.map((item) => ({ key: item.shardKey, index: item.index })));
  return {
    pixels,
    labels: Int32Array.from(items.map((item) => item.label)),
    count: items.length,
    size: manifest.imageSize,
    imageIds: items.map((item) => item.imageId),
  };
}

/**
 * Loads lesion masks (0 / 255, same layout as {@link loadImages}) for the selected items that have
 * one (synthetic data); `imageIds` says which images they belong to, in the same order.
 */
export async function loadMasks(store: ObjectStore, manifest: DatasetManifest, selection: ImageSelection): Promise<{ masks: Uint8Array; imageIds: string[]; count: number; size: number }> {
  const items = selectItems(manifest, selection).filter((item) => item.maskShardKey !== undefined && item.maskIndex !== undefined);
  const masks = await gather(store, manifest, items.map((item) => ({ key: item.maskShardKey ?? '', index: item.maskIndex ?? 0 })));
  return { masks, imageIds: items.map((item) => item.imageId), count: items.length, size: manifest.imageSize };
}

async function gather(store: ObjectStore, manifest: DatasetManifest, refs: readonly { key: string; index: number }[]): Promise<Uint8Array> {
  const area = manifest.imageSize * manifest.imageSize;
  const out = new Uint8Array(refs.length * area);
  const shards = new Map<string, Uint8Array>();
  for (const [position, ref] of refs.entries()) {
    let shard = shards.get(ref.key);
    if (!shard) {
      const meta = manifest.shards.find((s) => s.key === ref.key);
      if (!meta) throw new DatasetError(`manifest names shard ${ref.key} but does not list it`, { file: ref.key });
      shard = await store.getObject(ref.key);
      if (shard.byteLength !== meta.sizeBytes || sha256Hex(shard) !== meta.sha256) {
        throw new DatasetError(`${store.uri(ref.key)}: shard is ${shard.byteLength} bytes / hash differs from the manifest (${meta.sizeBytes} bytes, ${meta.sha256})`, {
          file: ref.key,
        });
      }
      shards.set(ref.key, shard);
    }
    if ((ref.index + 1) * area > shard.byteLength) throw new DatasetError(`${ref.key}: index ${ref.index} is beyond the shard`, { file: ref.key });
    out.set(shard.subarray(ref.index * area, (ref.index + 1) * area), position * area);
  }
  return out;
}

/** What {@link verifyManifest} found. */
export interface ManifestVerification {
  manifestKey: string;
  items: number;
  shards: number;
  /** Problems found; empty means the stored sampling is complete and intact. */
  problems: string[];
  /** Near-duplicate pairs the sampler found, and patient groups it merged because of them. */
  nearDuplicates: DatasetManifest['nearDuplicates'];
}

/**
 * Re-checks a stored sampling end to end: the manifest's own hash against its key, every shard's
 * presence, size and SHA-256, every item's shard reference and index, label indices, and the
 * patient leak rules (no patient in two folds, in both sets, or in Data-A train and validation),
 * and the near-duplicate leak rule (no recorded near-duplicate pair on two sides of a split).
 * Reports problems instead of throwing, so a CLI can list them all.
 */
export async function verifyManifest(store: ObjectStore, manifestKey: string): Promise<ManifestVerification> {
  const problems: string[] = [];
  const bytes = await store.getObject(manifestKey);
  const expected = /^manifests\/([0-9a-f]{64})\.json$/.exec(manifestKey)?.[1];
  if (expected && sha256Hex(bytes) !== expected) problems.push(`${manifestKey}: content hash ${sha256Hex(bytes)} does not match its key`);
  let manifest: DatasetManifest;
  try {
    manifest = await loadManifest(store, manifestKey);
  } catch (error) {
    return { manifestKey, items: 0, shards: 0, problems: [...problems, (error as Error).message], nearDuplicates: { pairs: [], mergedPatients: [] } };
  }
  const area = manifest.imageSize * manifest.imageSize;
  const shardByKey = new Map(manifest.shards.map((shard) => [shard.key, shard]));
  for (const shard of manifest.shards) {
    if (shard.sizeBytes !== shard.count * area) problems.push(`${shard.key}: ${shard.count} images of ${manifest.imageSize} px need ${shard.count * area} bytes, manifest says ${shard.sizeBytes}`);
    if (parseShardKey(shard.key)?.sha256 !== shard.sha256) problems.push(`${shard.key}: key does not name its SHA-256 ${shard.sha256}`);
    const stored = await store.getObject(shard.key).catch(() => null);
    if (!stored) problems.push(`${shard.key}: missing from ${store.bucket}`);
    else if (stored.byteLength !== shard.sizeBytes || sha256Hex(stored) !== shard.sha256) problems.push(`${shard.key}: stored bytes differ from the manifest`);
  }
  const used = new Set<string>();
  for (const item of manifest.items) {
    const classes = item.set === 'B' ? manifest.classes.dataB : manifest.classes.dataA;
    if (classes[item.label] !== item.className) problems.push(`${item.imageId}: label ${item.label} is not "${item.className}"`);
    const refs: [string | undefined, number | undefined][] = [[item.shardKey, item.index]];
    if (item.maskShardKey !== undefined) refs.push([item.maskShardKey, item.maskIndex]);
    for (const [key, index] of refs) {
      const shard = key ? shardByKey.get(key) : undefined;
      if (!shard || index === undefined || index >= shard.count) problems.push(`${item.imageId}: shard ${key} index ${index} does not exist`);
      else {
        const slot = `${key}#${index}`;
        if (used.has(slot)) problems.push(`${item.imageId}: shares ${slot} with another item`);
        used.add(slot);
      }
    }
  }
  for (const check of [() => checkSplitIntegrity(manifest.items), () => checkNearDuplicateLeakage(manifest.items, manifest.nearDuplicates.pairs)]) {
    try {
      check();
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  return { manifestKey, items: manifest.items.length, shards: manifest.shards.length, problems, nearDuplicates: manifest.nearDuplicates };
}
