/**
 * Near-duplicate images across sources: the same X-ray imported twice (e.g. the COVID-19 image data
 * collection and a folder holding a preprocessed copy of some of its images) under two patient
 * groups. Identical bytes are caught at import; a re-encoded, re-contrasted, cropped or slightly
 * rotated copy is not, and could land in a training fold and a test fold. This module finds such
 * pairs on the preprocessed pixels with a perceptual hash and merges their patient groups before
 * any split is made.
 */
import type { CatalogEntry } from './catalog';
import { mapLimit } from './concurrency';
import { DatasetError } from './errors';
import { preprocessImage } from './preprocess';
import { compareStrings } from './random';

/** Side of the preprocessed image the hashes are computed on (same crop policy as the shards). */
const HASH_IMAGE_SIZE = 64;
/** Side of the grid the DCT runs on (pHash's 32 × 32). */
const DCT_SIZE = 32;
/** Low-frequency DCT block kept: 8 × 8 = 64 coefficients, the DC term excluded from the median. */
const DCT_KEEP = 8;
/** Side of the crop-tolerance windows relative to the image: a 3 × 3 grid of 90% windows. */
const WINDOW_SHARE = 0.9;
/** Positions of the windows along each axis, as a share of the slack (0 = left/top, 1 = right/bottom). */
const WINDOW_POSITIONS = [0, 0.5, 1] as const;
/** Rotations (degrees) of the whole image that are hashed too, so a copy turned by up to ±7° meets one within 1.5°. */
const ROTATIONS = [-5.5, -2.5, 2.5, 5.5] as const;

/**
 * Decision thresholds, chosen on cxr-real (see the README's data section): a copy altered in
 * contrast, by a 5–10% crop or a ±5° rotation stays within them, distinct patients' X-rays do not.
 */
export const NEAR_DUPLICATE_THRESHOLDS = {
  /** Largest Hamming distance (of 63 bits) between two 64-bit DCT hashes that makes a candidate. */
  maxHammingDistance: 10,
  /** Smallest Pearson correlation of the matching views' detail (high-pass) grids that confirms a candidate. */
  minCorrelation: 0.85,
} as const;

/** Method description recorded in manifests, so a changed detector changes the sampling fingerprint. */
export const NEAR_DUPLICATE_METHOD = {
  version: 1,
  hash: `DCT pHash (${DCT_KEEP}x${DCT_KEEP} low frequencies of a rank-normalised ${DCT_SIZE}x${DCT_SIZE} grid, median threshold) on the ${HASH_IMAGE_SIZE} px preprocessed image`,
  views: `the whole image against the other's whole image, ${WINDOW_POSITIONS.length * WINDOW_POSITIONS.length} windows of ${WINDOW_SHARE * 100}%, and the whole image and centre window turned by ${ROTATIONS.join(', ')} degrees`,
  confirm: `Pearson correlation of the detail (grid minus its 5x5 box blur) of the matching views`,
  ...NEAR_DUPLICATE_THRESHOLDS,
};

/** What the detector keeps of one image: a hash of the whole view and of each crop window, and their thumbnails. */
export interface ImageFingerprint {
  /** Index 0: the whole image; then the crop windows. Each hash is two 32-bit halves. */
  hashes: Uint32Array;
  /**
   * Detail (high-pass) of each view's rank-normalised DCT_SIZE² grid, standardised and stored as
   * round(32 · z) clamped to ±127 (a quarter of the memory of floats: 2,000 images hold 37 MB),
   * one per view, concatenated.
   */
  thumbnails: Int8Array;
}

/** Two images that are the same picture. */
export interface NearDuplicatePair {
  /** `imageId`s in code-unit order (a < b). */
  a: string;
  b: string;
  /** Smallest Hamming distance between a whole view and a window of the other image. */
  hammingDistance: number;
  /** Correlation of the thumbnails of those two views. */
  correlation: number;
}

/**
 * Fingerprints one preprocessed grey image (`size`² pixels, row-major).
 * @throws RangeError when the pixel count does not match `size`.
 */
export function fingerprintPixels(pixels: Uint8Array, size: number): ImageFingerprint {
  if (!Number.isInteger(size) || size < 8 || pixels.length !== size * size) throw new RangeError(`expected ${size}x${size} = ${size * size} pixels, got ${pixels.length}`);
  const tables = samplingTables(size);
  const area = DCT_SIZE * DCT_SIZE;
  const hashes = new Uint32Array(tables.length * 2);
  const thumbnails = new Int8Array(tables.length * area);
  const grid = new Float64Array(area);
  tables.forEach((table, view) => {
    for (let cell = 0; cell < area; cell += 1) {
      let sum = 0;
      for (let k = cell * SAMPLE_TAPS; k < (cell + 1) * SAMPLE_TAPS; k += 1) sum += (pixels[table.index[k] as number] as number) * (table.weight[k] as number);
      grid[cell] = sum;
    }
    const ranked = rankNormalise(grid);
    const [low, high] = dctHash(ranked);
    hashes[view * 2] = low;
    hashes[view * 2 + 1] = high;
    const detail = highPass(ranked);
    for (let k = 0; k < area; k += 1) thumbnails[view * area + k] = Math.max(-127, Math.min(127, Math.round((detail[k] as number) * THUMBNAIL_SCALE)));
  });
  return { hashes, thumbnails };
}

/** Fixed-point scale of the stored detail grids (standardised values × 32). */
const THUMBNAIL_SCALE = 32;

/** Bilinear taps per grid cell: 2 × 2 sub-samples, 4 neighbours each. */
const SAMPLE_TAPS = 16;

/** Per view, the source pixel indices and weights of every grid cell (the same for every image of one size). */
interface SamplingTable {
  index: Int32Array;
  weight: Float32Array;
}

const tableCache = new Map<number, SamplingTable[]>();

/**
 * The views of an image: the whole image, the 3 × 3 grid of 90% windows (crop tolerance), and
 * the whole image and its centre window turned by each of {@link ROTATIONS} about the centre
 * (rotation tolerance; what falls outside reads as black, like the corners of a rotated copy). Each view is a map from the
 * DCT grid to source coordinates, sampled bilinearly at 2 × 2 points per cell.
 */
function samplingTables(size: number): SamplingTable[] {
  const cached = tableCache.get(size);
  if (cached) return cached;
  type View = (u: number, v: number) => [number, number];
  const views: View[] = [(u, v) => [u * size, v * size]];
  const side = size * WINDOW_SHARE;
  for (const fy of WINDOW_POSITIONS) for (const fx of WINDOW_POSITIONS) views.push((u, v) => [(size - side) * fx + u * side, (size - side) * fy + v * side]);
  for (const degrees of ROTATIONS) {
    const cos = Math.cos((degrees * Math.PI) / 180);
    const sin = Math.sin((degrees * Math.PI) / 180);
    // The whole image and its centre window, turned: a copy both cropped and rotated meets the latter.
    for (const extent of [size, side]) {
      views.push((u, v) => {
        const x = (u - 0.5) * extent;
        const y = (v - 0.5) * extent;
        return [size / 2 + cos * x - sin * y, size / 2 + sin * x + cos * y];
      });
    }
  }
  const tables = views.map((view) => {
    const index = new Int32Array(DCT_SIZE * DCT_SIZE * SAMPLE_TAPS);
    const weight = new Float32Array(DCT_SIZE * DCT_SIZE * SAMPLE_TAPS);
    let k = 0;
    for (let row = 0; row < DCT_SIZE; row += 1) {
      for (let col = 0; col < DCT_SIZE; col += 1) {
        for (const dy of [0.25, 0.75]) {
          for (const dx of [0.25, 0.75]) {
            const [x, y] = view((col + dx) / DCT_SIZE, (row + dy) / DCT_SIZE);
            // Pixel centres sit at half-integers; outside the image the taps get weight 0 (black).
            const cx = x - 0.5;
            const cy = y - 0.5;
            const x0 = Math.floor(cx);
            const y0 = Math.floor(cy);
            const fx = cx - x0;
            const fy = cy - y0;
            for (const [xx, yy, w] of [[x0, y0, (1 - fx) * (1 - fy)], [x0 + 1, y0, fx * (1 - fy)], [x0, y0 + 1, (1 - fx) * fy], [x0 + 1, y0 + 1, fx * fy]] as const) {
              const inside = xx >= -1 && xx <= size && yy >= -1 && yy <= size && x >= -0.5 && x <= size + 0.5 && y >= -0.5 && y <= size + 0.5;
              index[k] = Math.min(Math.max(yy, 0), size - 1) * size + Math.min(Math.max(xx, 0), size - 1);
              weight[k] = inside ? w / 4 : 0;
              k += 1;
            }
          }
        }
      }
    }
    return { index, weight };
  });
  tableCache.set(size, tables);
  return tables;
}

/**
 * Preprocesses an image file's bytes the way shards are made (centre crop to a square, grey) and
 * fingerprints it. Resolution degradation is left out: it blurs, and the hash keeps only low
 * frequencies anyway.
 */
export async function fingerprintImage(bytes: Uint8Array): Promise<ImageFingerprint> {
  return fingerprintPixels(await preprocessImage(bytes, { imageSize: HASH_IMAGE_SIZE, degradeToPixels: null }), HASH_IMAGE_SIZE);
}

/**
 * Compares two fingerprints: the whole view of each against every view of the other (so a copy
 * cropped by up to ~10% on any side, or turned by a few degrees, meets its matching view). Views
 * whose hashes are close enough are candidates; the best detail correlation among them decides.
 * @returns the near-duplicate evidence (smallest Hamming distance, best correlation), or null.
 */
export function compareFingerprints(first: ImageFingerprint, second: ImageFingerprint): { hammingDistance: number; correlation: number } | null {
  const { maxHammingDistance, minCorrelation } = NEAR_DUPLICATE_THRESHOLDS;
  const views = first.hashes.length / 2;
  const distances = new Int32Array(views * 2);
  let nearest = Infinity;
  for (let v = 0; v < views; v += 1) {
    distances[v * 2] = hamming(first.hashes, 0, second.hashes, v);
    distances[v * 2 + 1] = hamming(first.hashes, v, second.hashes, 0);
    nearest = Math.min(nearest, distances[v * 2] as number, distances[v * 2 + 1] as number);
  }
  if (nearest > maxHammingDistance) return null;
  // Every candidate view pair gets its detail correlated: the closest hashes are not always the
  // best-aligned views (a 3° copy hashes close to the unturned view but correlates with the turned
  // one). A cheap estimate on every 4th cell skips pairs that cannot reach the threshold; chest
  // X-rays are alike enough that many pairs of different patients get this far.
  let correlation = -Infinity;
  for (let v = 0; v < views; v += 1) {
    const candidates: [number, number, number][] = v === 0 ? [[0, 0, distances[0] as number]] : [[0, v, distances[v * 2] as number], [v, 0, distances[v * 2 + 1] as number]];
    for (const [i, j, distance] of candidates) {
      if (distance > maxHammingDistance) continue;
      if (thumbnailCorrelation(first.thumbnails, i, second.thumbnails, j, 4) < minCorrelation - PRESCREEN_MARGIN) continue;
      correlation = Math.max(correlation, thumbnailCorrelation(first.thumbnails, i, second.thumbnails, j, 1));
    }
  }
  return correlation >= minCorrelation ? { hammingDistance: nearest, correlation } : null;
}

/** How far below the threshold the every-4th-cell estimate of a correlation may fall and still be computed in full. */
const PRESCREEN_MARGIN = 0.15;

/**
 * Every near-duplicate pair among the fingerprinted images (all pairs compared; 2,000 images take
 * well under a second).
 * @returns pairs sorted by `a`, then `b`.
 */
export function findNearDuplicatePairs(images: readonly { imageId: string; fingerprint: ImageFingerprint }[]): NearDuplicatePair[] {
  const pairs: NearDuplicatePair[] = [];
  for (let i = 0; i < images.length; i += 1) {
    const first = images[i] as (typeof images)[number];
    for (let j = i + 1; j < images.length; j += 1) {
      const second = images[j] as (typeof images)[number];
      const match = compareFingerprints(first.fingerprint, second.fingerprint);
      if (!match) continue;
      const [a, b] = compareStrings(first.imageId, second.imageId) <= 0 ? [first.imageId, second.imageId] : [second.imageId, first.imageId];
      pairs.push({ a, b, ...match });
    }
  }
  return pairs.sort((x, y) => compareStrings(x.a, y.a) || compareStrings(x.b, y.b));
}

/** The `source` of generated images, which {@link detectNearDuplicates} leaves out. */
export const SYNTHETIC_SOURCE = 'synthetic';

/**
 * Reads, preprocesses and fingerprints every catalog image from a real source (not
 * {@link SYNTHETIC_SOURCE}), then finds the near-duplicate pairs.
 * @param onCorruptImage an image that fails to decode stops the detection (`fail`) or is left out
 *   of it (`skip`; the sampler reports it when it preprocesses the image for its shard).
 * @throws DatasetError naming the file when an image does not decode under `fail`.
 */
export async function detectNearDuplicates(
  catalog: readonly CatalogEntry[],
  options: { onCorruptImage: 'fail' | 'skip'; readFile: (path: string) => Promise<Uint8Array>; onProgress?: (done: number, total: number) => void },
): Promise<NearDuplicatePair[]> {
  let done = 0;
  // The generator draws every synthetic image itself, so two of them are never the same picture;
  // they share one drawn template, though, which makes them look alike to any perceptual hash.
  const real = catalog.filter((entry) => entry.source !== SYNTHETIC_SOURCE);
  const fingerprints = await mapLimit(real, 4, async (entry) => {
    try {
      return { imageId: entry.imageId, fingerprint: await fingerprintImage(await options.readFile(entry.path)) };
    } catch (error) {
      if (options.onCorruptImage === 'fail') throw new DatasetError(`${entry.path}: preprocessing failed (${(error as Error).message})`, { file: entry.path });
      return null;
    } finally {
      options.onProgress?.((done += 1), real.length);
    }
  });
  return findNearDuplicatePairs(fingerprints.filter((f): f is NonNullable<typeof f> => f !== null));
}

/** A set of patients merged because their images are near-duplicates of one another. */
export interface MergedPatientGroup {
  /** The group's new patient id: the smallest member id in code-unit order. */
  patientId: string;
  /** Every original patient id merged into it, sorted. */
  members: string[];
}

/**
 * Gives the patients of every near-duplicate pair one patient group (union–find over the pairs,
 * transitively), so no split can put the two copies on different sides.
 * @returns the catalog with `patientId` replaced by the merged group's id, and the merged groups.
 */
export function mergeNearDuplicatePatients(
  catalog: readonly CatalogEntry[],
  pairs: readonly NearDuplicatePair[],
): { catalog: CatalogEntry[]; merged: MergedPatientGroup[] } {
  const patientOf = new Map(catalog.map((entry) => [entry.imageId, entry.patientId]));
  const parent = new Map<string, string>();
  const find = (id: string): string => {
    let root = id;
    while ((parent.get(root) ?? root) !== root) root = parent.get(root) as string;
    parent.set(id, root);
    return root;
  };
  for (const pair of pairs) {
    const first = patientOf.get(pair.a);
    const second = patientOf.get(pair.b);
    if (first === undefined || second === undefined) throw new DatasetError(`near-duplicate pair names an image that is not in the catalog: ${first === undefined ? pair.a : pair.b}`);
    const [x, y] = [find(first), find(second)];
    // The smaller id becomes the root, so the merged id does not depend on pair order.
    if (x !== y) parent.set(compareStrings(x, y) < 0 ? y : x, compareStrings(x, y) < 0 ? x : y);
  }
  const members = new Map<string, Set<string>>();
  for (const patient of new Set(patientOf.values())) {
    const root = find(patient);
    members.set(root, (members.get(root) ?? new Set<string>()).add(patient));
  }
  const merged = [...members.entries()]
    .filter(([, group]) => group.size > 1)
    .map(([patientId, group]) => ({ patientId, members: [...group].sort(compareStrings) }))
    .sort((x, y) => compareStrings(x.patientId, y.patientId));
  return { catalog: catalog.map((entry) => ({ ...entry, patientId: find(entry.patientId) })), merged };
}

/** Where an image of a manifest is used, for the leakage check. */
export interface PlacedImage {
  imageId: string;
  set: 'A' | 'B';
  fold?: number;
  split?: 'train' | 'validation';
}

/**
 * The leakage check: fails when an image tested in one Data-B fold has a near-duplicate that some
 * fold model trains on — in another Data-B fold, or in Data-A, which the pretrained base learnt
 * from. Data-A training and validation copies are reported the same way.
 * @throws DatasetError naming both images and where each is.
 */
export function checkNearDuplicateLeakage(items: readonly PlacedImage[], pairs: readonly NearDuplicatePair[]): void {
  const placeOf = new Map(items.map((item) => [item.imageId, item.set === 'B' ? `Data-B fold ${item.fold}` : `Data-A ${item.split}`]));
  for (const pair of pairs) {
    const first = placeOf.get(pair.a);
    const second = placeOf.get(pair.b);
    if (first === undefined || second === undefined || first === second) continue;
    throw new DatasetError(
      `near-duplicate images on two sides of a split: ${pair.a} (${first}) and ${pair.b} (${second}) are the same picture (hash distance ${pair.hammingDistance}, correlation ${pair.correlation.toFixed(3)}); a model would be tested on an image it trained on`,
    );
  }
}

/**
 * Replaces every value by its rank (ties, at 1/16 grey level, share their mean rank), scaled to
 * zero mean and unit variance: any monotone contrast or brightness change (gain, offset, gamma,
 * windowing) leaves the result unchanged, which plain pHash only does for linear changes.
 */
function rankNormalise(values: Float64Array): Float32Array {
  const n = values.length;
  // One native numeric sort of packed (quantised value, index) keys instead of a comparator sort.
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i += 1) keys[i] = Math.round((values[i] as number) * 16) * n + i;
  keys.sort();
  const ranks = new Float64Array(n);
  for (let start = 0; start < n; ) {
    const level = Math.floor((keys[start] as number) / n);
    let end = start + 1;
    while (end < n && Math.floor((keys[end] as number) / n) === level) end += 1;
    for (let k = start; k < end; k += 1) ranks[(keys[k] as number) - level * n] = (start + end - 1) / 2;
    start = end;
  }
  return standardise(ranks);
}

/** (x − mean) / sd; a constant input stays all zero. */
function standardise(values: ArrayLike<number>): Float32Array {
  const n = values.length;
  let mean = 0;
  for (let i = 0; i < n; i += 1) mean += values[i] as number;
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i += 1) variance += ((values[i] as number) - mean) ** 2;
  const sd = Math.sqrt(variance / n) || 1;
  return Float32Array.from({ length: n }, (_, i) => ((values[i] as number) - mean) / sd);
}

/**
 * The detail of a grid: itself minus its 5 × 5 box blur, standardised. Every chest X-ray shares the
 * same coarse layout (two dark lungs, bright mediastinum), so coarse thumbnails of different
 * patients correlate at 0.9; their ribs, vessels, tubes and text do not.
 */
function highPass(grid: Float32Array): Float32Array {
  const out = new Float64Array(grid.length);
  for (let y = 0; y < DCT_SIZE; y += 1) {
    for (let x = 0; x < DCT_SIZE; x += 1) {
      let sum = 0;
      let count = 0;
      for (let dy = -2; dy <= 2; dy += 1) {
        const yy = y + dy;
        if (yy < 0 || yy >= DCT_SIZE) continue;
        for (let dx = -2; dx <= 2; dx += 1) {
          const xx = x + dx;
          if (xx < 0 || xx >= DCT_SIZE) continue;
          sum += grid[yy * DCT_SIZE + xx] as number;
          count += 1;
        }
      }
      out[y * DCT_SIZE + x] = (grid[y * DCT_SIZE + x] as number) - sum / count;
    }
  }
  return standardise(out);
}

/** cos((2x + 1) u π / 2N) for u < DCT_KEEP, x < N: the DCT-II basis rows that are kept. */
const DCT_BASIS: Float64Array = (() => {
  const basis = new Float64Array(DCT_KEEP * DCT_SIZE);
  for (let u = 0; u < DCT_KEEP; u += 1) for (let x = 0; x < DCT_SIZE; x += 1) basis[u * DCT_SIZE + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * DCT_SIZE));
  return basis;
})();

/** 64-bit pHash: bit (v, u) set when that low-frequency DCT coefficient exceeds the median of the 63 non-DC ones. */
function dctHash(grid: Float32Array): [number, number] {
  const rows = new Float64Array(DCT_SIZE * DCT_KEEP);
  for (let y = 0; y < DCT_SIZE; y += 1) {
    for (let u = 0; u < DCT_KEEP; u += 1) {
      let sum = 0;
      for (let x = 0; x < DCT_SIZE; x += 1) sum += (grid[y * DCT_SIZE + x] as number) * (DCT_BASIS[u * DCT_SIZE + x] as number);
      rows[y * DCT_KEEP + u] = sum;
    }
  }
  const coefficients = new Float64Array(DCT_KEEP * DCT_KEEP);
  for (let v = 0; v < DCT_KEEP; v += 1) {
    for (let u = 0; u < DCT_KEEP; u += 1) {
      let sum = 0;
      for (let y = 0; y < DCT_SIZE; y += 1) sum += (rows[y * DCT_KEEP + u] as number) * (DCT_BASIS[v * DCT_SIZE + y] as number);
      coefficients[v * DCT_KEEP + u] = sum;
    }
  }
  const acTerms = Array.from(coefficients.subarray(1)).sort((a, b) => a - b);
  const median = ((acTerms[31] as number) + (acTerms[30] as number)) / 2;
  let low = 0;
  let high = 0;
  // Bit 0 (the DC term) stays 0 in every hash: after rank normalisation it carries nothing.
  for (let i = 1; i < 64; i += 1) {
    if ((coefficients[i] as number) <= median) continue;
    if (i < 32) low |= 1 << i;
    else high |= 1 << (i - 32);
  }
  return [low >>> 0, high >>> 0];
}

function popcount(value: number): number {
  let v = value - ((value >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

function hamming(first: Uint32Array, i: number, second: Uint32Array, j: number): number {
  return popcount(((first[i * 2] as number) ^ (second[j * 2] as number)) >>> 0) + popcount(((first[i * 2 + 1] as number) ^ (second[j * 2 + 1] as number)) >>> 0);
}

/** Cosine of two stored detail grids over every `stride`-th cell (both have close to zero mean, so this is Pearson's r up to rounding). */
function thumbnailCorrelation(first: Int8Array, i: number, second: Int8Array, j: number, stride: number): number {
  const area = DCT_SIZE * DCT_SIZE;
  let sum = 0;
  let firstSquares = 0;
  let secondSquares = 0;
  for (let k = 0; k < area; k += stride) {
    const x = first[i * area + k] as number;
    const y = second[j * area + k] as number;
    sum += x * y;
    firstSquares += x * x;
    secondSquares += y * y;
  }
  return firstSquares === 0 || secondSquares === 0 ? 0 : sum / Math.sqrt(firstSquares * secondSquares);
}
