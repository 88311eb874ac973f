import { DATA_B_CLASSES, type DataBClass } from '@detl/config';
import type { CatalogEntry } from './catalog';
import { DatasetError } from './errors';
import { compareStrings, createRandom, shuffled } from './random';

/** The six NIH findings the paper's Data-B other_disease draws 50 images each from. */
export const PAPER_OTHER_DISEASE_FINDINGS = ['Atelectasis', 'Cardiomegaly', 'Infiltration', 'Effusion', 'Nodule', 'Mass'] as const;

/**
 * The paper's set sizes (Basu et al. 2020). Data-B: normal 350, pneumonia 322, other_disease 300
 * (50 per finding above), covid 305. Data-A training: 47,560 normal / 40,819 diseased; its
 * balanced 10,000 + 10,000 validation set was sampled from that training pool, so the pool sizes
 * are what is sampled here and the balanced validation part is taken from it by patient
 * (`sampleCatalog`'s `dataAValidation`).
 */
export const PAPER_SIZES = {
  dataB: { normal: 350, pneumonia: 322, other_disease: 300, covid: 305 } as Record<DataBClass, number>,
  otherDiseasePerFinding: 50,
  dataA: { normal: 47_560, diseased: 40_819 },
  dataAValidation: { normal: 10_000, diseased: 10_000 },
};

/** Set sizes of {@link selectPaperSubsets}. */
export interface PaperSizes {
  dataB: Record<DataBClass, number>;
  otherDiseasePerFinding: number;
  dataA: { normal: number; diseased: number };
  /** Balanced Data-A validation images per class (drawn from the Data-A pool). */
  dataAValidation: { normal: number; diseased: number };
}

/**
 * The paper's sizes multiplied by `scale` (rounded, at least 1 each) for small runs; e.g. 0.1
 * gives Data-B 35 / 32 / 30 (5 per finding) / 31 (rounded half up) and Data-A 4,756 / 4,082.
 */
export function paperSizes(scale = 1): PaperSizes {
  if (!(scale > 0)) throw new DatasetError(`--scale must be a positive number, got ${scale}`);
  const s = (n: number): number => Math.max(1, Math.round(n * scale));
  const perFinding = s(PAPER_SIZES.otherDiseasePerFinding);
  return {
    dataB: {
      normal: s(PAPER_SIZES.dataB.normal),
      pneumonia: s(PAPER_SIZES.dataB.pneumonia),
      other_disease: perFinding * PAPER_OTHER_DISEASE_FINDINGS.length,
      covid: s(PAPER_SIZES.dataB.covid),
    },
    otherDiseasePerFinding: perFinding,
    dataA: { normal: s(PAPER_SIZES.dataA.normal), diseased: s(PAPER_SIZES.dataA.diseased) },
    dataAValidation: { normal: s(PAPER_SIZES.dataAValidation.normal), diseased: s(PAPER_SIZES.dataAValidation.diseased) },
  };
}

/** Result of {@link selectPaperSubsets}. */
export interface PaperSelection {
  /** The chosen images only, each with `subset` set; pass to `sampleCatalog` with `maxImagesPerClass: null`. */
  catalog: CatalogEntry[];
  /** Shortfalls ("asked 322 pneumonia, 210 exist") and fallbacks. */
  warnings: string[];
}

/**
 * Chooses the paper's Data-B and Data-A from a merged catalog (e.g. NIH + Cohen), seeded:
 * Data-B first — covid, pneumonia and normal at random, other_disease as `otherDiseasePerFinding`
 * images per finding of {@link PAPER_OTHER_DISEASE_FINDINGS} (from images carrying that finding and
 * no Pneumonia); then Data-A from normal / other_disease images of patients not in Data-B. When a
 * source has fewer images than asked it says so and uses what exists, or fails with `strict`.
 * @throws DatasetError under `strict` naming the class (or finding) and both counts.
 */
export function selectPaperSubsets(catalog: readonly CatalogEntry[], options: { sizes: PaperSizes; seed: number; strict?: boolean }): PaperSelection {
  const { sizes, seed } = options;
  const warnings: string[] = [];
  const pool = catalog.slice().sort((a, b) => compareStrings(a.imageId, b.imageId));
  const take = (what: string, candidates: readonly CatalogEntry[], count: number, stream: string): CatalogEntry[] => {
    if (candidates.length < count) {
      const message = `${what}: asked for ${count} images, ${candidates.length} available`;
      if (options.strict) throw new DatasetError(`${message} (strict)`);
      warnings.push(`${message}; using all of them`);
    }
    return shuffled(candidates, createRandom(seed, 'paper', stream)).slice(0, count);
  };
  const chosenB = new Set<CatalogEntry>();
  for (const label of ['covid', 'pneumonia', 'normal'] as const) {
    for (const entry of take(`Data-B ${label}`, pool.filter((e) => e.label === label), sizes.dataB[label], `b-${label}`)) chosenB.add(entry);
  }
  const otherDisease = pool.filter((e) => e.label === 'other_disease');
  if (otherDisease.some((e) => e.findings !== undefined)) {
    for (const finding of PAPER_OTHER_DISEASE_FINDINGS) {
      const candidates = otherDisease.filter((e) => !chosenB.has(e) && e.findings?.includes(finding) && !e.findings.includes('Pneumonia'));
      for (const entry of take(`Data-B other_disease (${finding})`, candidates, sizes.otherDiseasePerFinding, `b-${finding}`)) chosenB.add(entry);
    }
  } else {
    warnings.push('the catalog has no findings for other_disease; Data-B other_disease is drawn at random instead of per finding');
    for (const entry of take('Data-B other_disease', otherDisease, sizes.dataB.other_disease, 'b-other_disease')) chosenB.add(entry);
  }
  const patientsB = new Set([...chosenB].map((e) => e.patientId));
  const restA = pool.filter((e) => !patientsB.has(e.patientId) && !(e.findings ?? []).includes('Pneumonia'));
  const chosenA = [
    ...take('Data-A normal', restA.filter((e) => e.label === 'normal'), sizes.dataA.normal, 'a-normal'),
    ...take('Data-A diseased', restA.filter((e) => e.label === 'other_disease'), sizes.dataA.diseased, 'a-diseased'),
  ];
  const selected = [...[...chosenB].map((e) => ({ ...e, subset: 'B' as const })), ...chosenA.map((e) => ({ ...e, subset: 'A' as const }))];
  for (const label of DATA_B_CLASSES) if (!selected.some((e) => e.subset === 'B' && e.label === label)) warnings.push(`Data-B has no ${label} image`);
  return { catalog: selected.sort((a, b) => compareStrings(a.imageId, b.imageId)), warnings };
}
