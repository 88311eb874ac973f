import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { DataBClass } from '@detl/config';
import { mapLimit } from './concurrency';
import { DatasetError } from './errors';
import { createRandom, uniform, type Random } from './random';

/** Parameters of {@link generateSyntheticDataset}. */
export interface SyntheticDatasetOptions {
  /** Folder to write into; must not exist yet or be empty. */
  root: string;
  seed: number;
  /** Side of the square images, in pixels (e.g. 128). */
  imageSize: number;
  /** Data-B images per class. */
  dataB: Record<DataBClass, number>;
  /** Data-A images per class; Data-A `diseased` images are written to `other_disease/`. */
  dataA: { normal: number; diseased: number };
}

/** What {@link generateSyntheticDataset} wrote. */
export interface SyntheticDatasetResult {
  root: string;
  imageCount: number;
}

/**
 * Version of the images {@link generateSyntheticDataset} draws; bump it with any change to the
 * drawing, because generated sets are cached by their parameters and this number.
 */
export const SYNTHETIC_GENERATOR_VERSION = 3;

/** Which synthetic lesion an image carries; recorded nowhere but decides what the mask shows. */
type LesionKind = 'none' | 'ground-glass' | 'consolidation' | 'nodules' | 'effusion' | 'cardiomegaly';

interface ImagePlan {
  file: string;
  label: DataBClass;
  patientId: string;
  subset: 'A' | 'B';
}

/** Anatomy shared by every image of one patient, so follow-up images look like the same person. */
interface Anatomy {
  lungCx: number;
  lungCy: number;
  lungRx: number;
  lungRy: number;
  heartCx: number;
  heartCy: number;
  heartR: number;
  ribStart: number;
  ribStep: number;
  bodyGrey: number;
}

/** A lesion as a function of scene coordinates: intensity added and whether it counts as lesion. */
type LesionField = (x: number, y: number, lungLeft: number, lungRight: number) => number;

/** Patients per class the generator guarantees (when the class has that many images): the largest fold count the config allows. */
const MIN_PATIENTS_PER_CLASS = 10;

/** Resolution of the contrast (gamma) lookup table. */
const GAMMA_STEPS = 4096;

/** Pixels the mask marks: where the lesion adds at least this much grey. */
const MASK_THRESHOLD = 12;

/**
 * Writes a synthetic chest-X-ray dataset in the folder-per-class layout {@link importFolderDataset}
 * reads: `root/<class>/<id>.png`, lesion masks at `root/masks/<class>/<id>.png` (0 / 255, same size)
 * and `root/labels.csv` (`file,label,patient_id,subset,source`).
 *
 * Each image is drawn analytically: dark background, soft-tissue body, two lung fields, ribs,
 * mediastinum and heart shadow, low- and high-frequency noise, small random rotation / scale / shift
 * and contrast jitter. Lesions are deliberately strong so a small CNN at 64 px learns them within a
 * few epochs: covid = bilateral peripheral lower-zone ground-glass haze; pneumonia = dense
 * consolidation of one lobe of one lung; other_disease = nodules / a mass, a pleural effusion that
 * blunts the costophrenic angle, or an enlarged heart; normal = none. About a quarter of patients
 * have two or three images (follow-ups), so patient grouping matters; every class still has at
 * least min(images, 10) patients, so any allowed fold count can be used.
 *
 * Deterministic: the same options give byte-identical files (own PRNG, fixed PNG settings).
 * @throws DatasetError when `root` exists and is not empty, or counts / size are invalid.
 */
export async function generateSyntheticDataset(options: SyntheticDatasetOptions): Promise<SyntheticDatasetResult> {
  const { root, seed, imageSize } = options;
  if (!Number.isInteger(imageSize) || imageSize < 16 || imageSize > 1024) {
    throw new DatasetError(`synthetic imageSize must be an integer in 16..1024, got ${imageSize}`);
  }
  const counts = [...Object.values(options.dataB), options.dataA.normal, options.dataA.diseased];
  if (counts.some((count) => !Number.isInteger(count) || count < 0)) {
    throw new DatasetError(`synthetic image counts must be non-negative integers, got ${JSON.stringify(counts)}`);
  }
  const existing = await readdir(root).catch(() => [] as string[]);
  if (existing.length > 0) throw new DatasetError(`${root}: synthetic dataset folder must be empty or absent`, { file: root });

  const plans: ImagePlan[] = [];
  const planRandom = createRandom(seed, 'synthetic-patients');
  const planClass = (subset: 'A' | 'B', label: DataBClass, group: string, count: number): void => {
    let patient = 0;
    let imagesOfPatient = 0;
    // At least min(count, 10) patients per class, so any fold count the config allows (≤ 10) works
    // whenever a class has that many images.
    const minPatients = Math.min(count, MIN_PATIENTS_PER_CLASS);
    for (let i = 0; i < count; i += 1) {
      // Follow-up images: a patient keeps going with probability 0.25, up to three images, as long
      // as enough images remain for the patients still owed.
      const roomForFollowUp = count - i > minPatients - patient;
      const followUp = i > 0 && imagesOfPatient < 3 && roomForFollowUp && planRandom() < 0.25;
      if (!followUp) {
        patient += 1;
        imagesOfPatient = 0;
      }
      imagesOfPatient += 1;
      const id = String(i + 1).padStart(5, '0');
      plans.push({
        file: `${label}/${subset.toLowerCase()}-${group}-${id}.png`,
        label,
        patientId: `syn-${subset.toLowerCase()}-${group}-${String(patient).padStart(5, '0')}`,
        subset,
      });
    }
  };
  for (const label of ['normal', 'pneumonia', 'other_disease', 'covid'] as const) planClass('B', label, label, options.dataB[label]);
  planClass('A', 'normal', 'normal', options.dataA.normal);
  planClass('A', 'other_disease', 'diseased', options.dataA.diseased);

  for (const folder of ['normal', 'pneumonia', 'other_disease', 'covid']) {
    await mkdir(path.join(root, folder), { recursive: true });
    await mkdir(path.join(root, 'masks', folder), { recursive: true });
  }
  await mapLimit(plans, 4, async (plan) => {
    const { image, mask } = renderImage(seed, plan, imageSize);
    await writeFile(path.join(root, plan.file), await encodeGreyPng(image, imageSize));
    await writeFile(path.join(root, 'masks', plan.file), await encodeGreyPng(mask, imageSize));
  });
  const rows = plans.map((plan) => `${plan.file},${plan.label},${plan.patientId},${plan.subset},synthetic`);
  // labels.csv last: its presence marks a complete dataset for callers that cache generated folders.
  await writeFile(path.join(root, 'labels.csv'), `file,label,patient_id,subset,source\n${rows.join('\n')}\n`);
  return { root, imageCount: plans.length };
}

function encodeGreyPng(pixels: Uint8Array, size: number): Promise<Buffer> {
  // Uncompressed (stored) deflate: compressed output may differ between zlib-ng builds and CPU
  // feature paths, and the file hashes end up in manifests; stored blocks do not. The cost is
  // size (16 KiB per 128 px image), acceptable for a local cache.
  return sharp(pixels, { raw: { width: size, height: size, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 0, adaptiveFiltering: false, palette: false })
    .toBuffer();
}

/** Renders one image and its lesion mask (0 / 255), both `size`×`size`, row-major. */
export function renderImage(seed: number, plan: Pick<ImagePlan, 'file' | 'label' | 'patientId' | 'subset'>, size: number): { image: Uint8Array; mask: Uint8Array } {
  const anatomy = drawAnatomy(createRandom(seed, 'anatomy', plan.patientId));
  const random = createRandom(seed, 'image', plan.file);
  const lesionKind = chooseLesion(plan.label, plan.subset, random);
  const heartScale = lesionKind === 'cardiomegaly' ? uniform(random, 1.35, 1.5) : 1;
  const lesion = buildLesion(lesionKind, anatomy, random);

  const angle = (uniform(random, -4, 4) * Math.PI) / 180;
  const zoom = uniform(random, 0.94, 1.06);
  const shiftX = uniform(random, -0.03, 0.03);
  const shiftY = uniform(random, -0.03, 0.03);
  const gain = uniform(random, 0.85, 1.15);
  const bias = uniform(random, -10, 10);
  const gamma = uniform(random, 0.85, 1.15);
  const noiseSd = uniform(random, 3, 7);
  const lowFreq = valueNoiseGrid(random, 6);
  const cos = Math.cos(angle) / zoom;
  const sin = Math.sin(angle) / zoom;

  // A per-image lookup table instead of a pow() per pixel: the single hottest operation otherwise.
  const gammaTable = new Uint8Array(GAMMA_STEPS + 1);
  for (let i = 0; i <= GAMMA_STEPS; i += 1) gammaTable[i] = Math.round(255 * (i / GAMMA_STEPS) ** gamma);
  const scratch = { grey: 0, lungLeft: 0, lungRight: 0 };
  const image = new Uint8Array(size * size);
  const mask = new Uint8Array(size * size);
  for (let row = 0; row < size; row += 1) {
    const v = (row + 0.5) / size - 0.5 - shiftY;
    for (let col = 0; col < size; col += 1) {
      const u = (col + 0.5) / size - 0.5 - shiftX;
      // Inverse pose transform: evaluate the analytic scene where this pixel came from.
      const x = 0.5 + cos * u + sin * v;
      const y = 0.5 - sin * u + cos * v;
      anatomyAt(anatomy, x, y, heartScale, scratch);
      const lungLeft = scratch.lungLeft;
      const lungRight = scratch.lungRight;
      let value = scratch.grey;
      let lesionValue = 0;
      if (lesion) lesionValue = lesion(x, y, lungLeft, lungRight);
      if (lesionKind === 'cardiomegaly') {
        // The enlarged heart itself is the finding, so the mask is its whole silhouette. (Version 2
        // marked only the ring by which it exceeds a normal heart: a map pointing at the heart, which
        // is what the class depends on, scored a miss in the pointing game.)
        lesionValue = 0;
        if (heartAt(anatomy, x, y, heartScale) > 0.5) mask[row * size + col] = 255;
      } else if (lesionValue >= MASK_THRESHOLD) {
        mask[row * size + col] = 255;
      }
      value += lesionValue;
      // Irwin–Hall sum of four uniforms: close enough to Gaussian for noise, far cheaper than Box–Muller.
      const noise = (random() + random() + random() + random() - 2) * 1.7320508;
      value += 8 * bilinear(lowFreq, 6, x, y) + noiseSd * noise;
      const level = Math.min(Math.max(Math.round(((value * gain + bias) / 255) * GAMMA_STEPS), 0), GAMMA_STEPS);
      image[row * size + col] = gammaTable[level] ?? 0;
    }
  }
  return { image, mask };
}

function drawAnatomy(random: Random): Anatomy {
  return {
    lungCx: uniform(random, 0.19, 0.21),
    lungCy: uniform(random, 0.47, 0.5),
    lungRx: uniform(random, 0.145, 0.165),
    lungRy: uniform(random, 0.3, 0.33),
    heartCx: uniform(random, 0.54, 0.58),
    heartCy: uniform(random, 0.62, 0.66),
    heartR: uniform(random, 0.11, 0.13),
    ribStart: uniform(random, 0.16, 0.2),
    ribStep: uniform(random, 0.065, 0.075),
    bodyGrey: uniform(random, 90, 110),
  };
}

function smoothstep(edge0: number, edge1: number, x: number): number {
  const t = Math.min(Math.max((x - edge0) / (edge1 - edge0), 0), 1);
  return t * t * (3 - 2 * t);
}

/** 1 inside the lung field on that side (soft edge), 0 outside. `side` -1 = image left, +1 = image right. */
function lungAt(a: Anatomy, x: number, y: number, side: -1 | 1): number {
  const cx = 0.5 + side * a.lungCx;
  const dx = (x - cx) / a.lungRx;
  const dy = (y - a.lungCy) / a.lungRy;
  // Flatter towards the mediastinum and pointed at the apex: a squashed super-ellipse reads as a lung.
  if (dx > 1.3 || dx < -1.3 || dy > 1.2 || dy < -1.3) return 0;
  const dxm = side * (x - cx) < 0 ? dx * 1.25 : dx;
  const dyy = dy < 0 ? dy * 1.08 : dy;
  // The quartic term flattens the base (diaphragm) so the lateral costophrenic angle stays sharp.
  const d = dxm * dxm + dyy * dyy + (dy > 0 ? 0.6 * dy * dy * dy * dy : 0);
  return 1 - smoothstep(0.85, 1.05, d);
}

function heartAt(a: Anatomy, x: number, y: number, scale: number): number {
  const dx = (x - a.heartCx) / (a.heartR * 1.15 * scale);
  const dy = (y - a.heartCy) / (a.heartR * scale);
  return 1 - smoothstep(0.85, 1.05, dx * dx + dy * dy);
}

/** Writes the anatomy's grey level and lung weights at (x, y) into `out` (no per-pixel allocation). */
function anatomyAt(a: Anatomy, x: number, y: number, heartScale: number, out: { grey: number; lungLeft: number; lungRight: number }): void {
  const bx = (x - 0.5) / 0.48;
  const by = (y - 0.62) / 0.62;
  const body = 1 - smoothstep(0.9, 1.0, bx * bx + by * by);
  let grey = 18 + (a.bodyGrey - 18) * body;
  const heart = heartAt(a, x, y, heartScale);
  const lungLeft = lungAt(a, x, y, -1) * (1 - heart);
  const lungRight = lungAt(a, x, y, 1) * (1 - heart);
  grey -= 60 * (lungLeft + lungRight);
  grey += 30 * heart;
  // Mediastinum and spine: a bright vertical band down the middle.
  grey += 50 * body * (1 - smoothstep(0.045, 0.07, Math.abs(x - 0.5))) * (1 - smoothstep(0.75, 0.85, y));
  // Posterior ribs: bright arcs dipping laterally, visible across the lungs.
  const lateral = Math.abs(x - 0.5);
  const curve = 0.9 * (lateral - 0.05) * (lateral - 0.05);
  const k = Math.round((y - a.ribStart - curve) / a.ribStep);
  if (k >= 0 && k <= 8 && lateral > 0.06 && lateral < 0.42) {
    const distance = y - (a.ribStart + curve + k * a.ribStep);
    grey += 26 * body * Math.exp(-(distance * distance) / (2 * 0.009 * 0.009));
  }
  out.grey = grey;
  out.lungLeft = lungLeft;
  out.lungRight = lungRight;
}

/**
 * Data-A `diseased` mirrors NIH's 13 non-pneumonia findings, which include consolidation,
 * infiltration and edema: it draws from every lesion pattern, including the ones Data-B calls
 * pneumonia and covid, so pretraining learns features the 4-class task can reuse, as in the paper.
 */
function chooseLesion(label: DataBClass, subset: 'A' | 'B', random: Random): LesionKind {
  if (subset === 'A' && label === 'other_disease') {
    const kinds = ['nodules', 'effusion', 'cardiomegaly', 'consolidation', 'ground-glass'] as const;
    return kinds[Math.min(kinds.length - 1, Math.floor(random() * kinds.length))] ?? 'nodules';
  }
  switch (label) {
    case 'normal':
      return 'none';
    case 'covid':
      return 'ground-glass';
    case 'pneumonia':
      return 'consolidation';
    case 'other_disease': {
      const pick = random();
      return pick < 0.4 ? 'nodules' : pick < 0.7 ? 'effusion' : 'cardiomegaly';
    }
  }
}

function buildLesion(kind: LesionKind, a: Anatomy, random: Random): LesionField | null {
  switch (kind) {
    case 'none':
    case 'cardiomegaly':
      return null;
    case 'ground-glass': {
      // Bilateral, peripheral, lower zone, hazy: two soft blobs hugging the lateral wall of each lung.
      const blobs: { cx: number; cy: number; sx: number; sy: number; amp: number; side: -1 | 1 }[] = [];
      for (const side of [-1, 1] as const) {
        for (let i = 0; i < 2; i += 1) {
          blobs.push({
            cx: 0.5 + side * (a.lungCx + a.lungRx * uniform(random, 0.35, 0.7)),
            cy: a.lungCy + a.lungRy * uniform(random, 0.25, 0.6),
            sx: uniform(random, 0.05, 0.075),
            sy: uniform(random, 0.07, 0.1),
            amp: uniform(random, 40, 58),
            side,
          });
        }
      }
      return (x, y, left, right) => {
        let total = 0;
        for (const blob of blobs) {
          const dx = (x - blob.cx) / blob.sx;
          const dy = (y - blob.cy) / blob.sy;
          total += blob.amp * Math.exp(-0.5 * (dx * dx + dy * dy)) * (blob.side < 0 ? left : right);
        }
        return Math.min(total, 62);
      };
    }
    case 'consolidation': {
      // One lobe of one lung, dense and fairly sharp along the fissure.
      const side: -1 | 1 = random() < 0.5 ? -1 : 1;
      const lower = random() < 0.65;
      const fissureY = a.lungCy + uniform(random, -0.04, 0.06);
      const tilt = uniform(random, -0.25, 0.25);
      const cx = 0.5 + side * a.lungCx;
      const amp = uniform(random, 70, 90);
      return (x, y, left, right) => {
        const lung = side < 0 ? left : right;
        if (lung <= 0) return 0;
        const boundary = fissureY + tilt * (x - cx);
        const inLobe = lower ? smoothstep(boundary - 0.012, boundary + 0.012, y) : 1 - smoothstep(boundary - 0.012, boundary + 0.012, y);
        return amp * inLobe * lung;
      };
    }
    case 'nodules': {
      const count = 1 + Math.floor(random() * 3);
      const nodules = Array.from({ length: count }, () => {
        const side: -1 | 1 = random() < 0.5 ? -1 : 1;
        const angle = uniform(random, 0, 2 * Math.PI);
        const reach = Math.sqrt(random()) * 0.6;
        return {
          cx: 0.5 + side * a.lungCx + Math.cos(angle) * reach * a.lungRx,
          cy: a.lungCy + Math.sin(angle) * reach * a.lungRy,
          r: uniform(random, 0.025, count === 1 ? 0.065 : 0.04),
          amp: uniform(random, 80, 100),
        };
      });
      return (x, y) => {
        let total = 0;
        for (const n of nodules) {
          const d = Math.hypot(x - n.cx, y - n.cy) / n.r;
          total += n.amp * (1 - smoothstep(0.8, 1.05, d));
        }
        return total;
      };
    }
    case 'effusion': {
      // Fluid fills the base of one hemithorax with a meniscus rising laterally, erasing the
      // costophrenic angle.
      const side: -1 | 1 = random() < 0.5 ? -1 : 1;
      const level = a.lungCy + a.lungRy * uniform(random, 0.3, 0.55);
      const cx = 0.5 + side * a.lungCx;
      const amp = uniform(random, 75, 95);
      return (x, y, left, right) => {
        const lateralness = Math.max(0, (side * (x - cx)) / a.lungRx);
        const surface = level - 0.08 * lateralness * lateralness;
        const fluid = smoothstep(surface - 0.01, surface + 0.01, y);
        // Fluid also covers the lung's soft edge below the level, which is what blunts the angle.
        const region = Math.max(side < 0 ? left : right, lungAt(a, x, y - 0.03, side));
        return amp * fluid * Math.min(1, region * 1.3);
      };
    }
  }
}

function valueNoiseGrid(random: Random, cells: number): Float64Array {
  const grid = new Float64Array((cells + 1) * (cells + 1));
  for (let i = 0; i < grid.length; i += 1) grid[i] = random() * 2 - 1;
  return grid;
}

function bilinear(grid: Float64Array, cells: number, x: number, y: number): number {
  const gx = Math.min(Math.max(x, 0), 1) * cells;
  const gy = Math.min(Math.max(y, 0), 1) * cells;
  const x0 = Math.min(Math.floor(gx), cells - 1);
  const y0 = Math.min(Math.floor(gy), cells - 1);
  const fx = gx - x0;
  const fy = gy - y0;
  const row = cells + 1;
  const i = y0 * row + x0;
  const a = grid[i] ?? 0;
  const b = grid[i + 1] ?? 0;
  const c = grid[i + row] ?? 0;
  const d = grid[i + row + 1] ?? 0;
  return a * (1 - fx) * (1 - fy) + b * fx * (1 - fy) + c * (1 - fx) * fy + d * fx * fy;
}
