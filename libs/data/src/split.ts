import { DATA_B_CLASSES, type DataBClass } from '@detl/config';
import type { CatalogEntry } from './catalog';
import { DatasetError } from './errors';
import { compareStrings, createRandom, shuffled } from './random';

/**
 * How images were divided between Data-A and Data-B, as recorded in manifests: by the source's
 * `subset` column, by `pretrainPatientShare`, both, or (`dataset.dataB: 'all'`) every patient the
 * source does not reserve for Data-A goes to Data-B.
 */
export type SetAssignmentRule = 'subset-column' | 'patient-share' | 'subset-column+patient-share' | 'all-to-data-b' | 'subset-column+all-to-data-b';

/** Options of {@link assignSets}. */
export interface SetAssignmentOptions {
  /**
   * `exclude-data-a` (default): a `pretrainPatientShare` of the unmarked normal / other_disease
   * patients is held out of Data-B for pretraining. `all`: none is; only images the source marks
   * `subset` A stay out (what a recipe without pretraining wants: every image in the folds).
   */
  dataB?: 'exclude-data-a' | 'all';
}

/** Result of {@link assignSets}. */
export interface SetAssignment {
  dataA: CatalogEntry[];
  dataB: CatalogEntry[];
  rule: SetAssignmentRule;
}

/**
 * Divides a catalog into Data-A (pretraining: normal vs other_disease) and Data-B (4 classes).
 *
 * Rule: an image with a `subset` follows it, and so do the other images of its patient. Patients
 * with no `subset` anywhere go to Data-B when they have any pneumonia or covid image (those classes
 * are never in Data-A); the rest — patients with only normal / other_disease images — are shuffled
 * (seeded) within their main class (other_disease when they have any, else normal) and the first
 * `pretrainPatientShare` of each class go to Data-A — unless `options.dataB` is `all`, which sends
 * them all to Data-B. Patients, not images, are split, so Data-A and Data-B never share a person.
 * @throws DatasetError when a pneumonia / covid image is marked subset A, or one patient is marked
 *   both A and B.
 */
export function assignSets(catalog: readonly CatalogEntry[], seed: number, pretrainPatientShare: number, options: SetAssignmentOptions = {}): SetAssignment {
  const all = options.dataB === 'all';
  const byPatient = groupBy(catalog, (entry) => entry.patientId);
  const patientSet = new Map<string, 'A' | 'B'>();
  let explicit = 0;
  for (const [patient, entries] of byPatient) {
    const marked = entries.filter((entry) => entry.subset !== undefined);
    explicit += marked.length;
    const sets = new Set(marked.map((entry) => entry.subset));
    if (sets.size > 1) {
      const a = marked.find((entry) => entry.subset === 'A');
      const b = marked.find((entry) => entry.subset === 'B');
      throw new DatasetError(`Data-A and Data-B share patient "${patient}": ${a?.file} is subset A, ${b?.file} is subset B`, { file: a?.file ?? '' });
    }
    const set = marked[0]?.subset;
    if (set) patientSet.set(patient, set);
  }
  const candidates = new Map<DataBClass, string[]>([
    ['normal', []],
    ['other_disease', []],
  ]);
  for (const [patient, entries] of [...byPatient].sort((a, b) => compareStrings(a[0], b[0]))) {
    if (patientSet.has(patient)) continue;
    if (entries.some((entry) => entry.label === 'pneumonia' || entry.label === 'covid')) patientSet.set(patient, 'B');
    else candidates.get(entries.some((entry) => entry.label === 'other_disease') ? 'other_disease' : 'normal')?.push(patient);
  }
  let shared = 0;
  for (const [label, patients] of candidates) {
    const order = shuffled(patients, createRandom(seed, 'data-a-patients', label));
    const toA = all ? 0 : Math.round(order.length * pretrainPatientShare);
    order.forEach((patient, index) => patientSet.set(patient, index < toA ? 'A' : 'B'));
    shared += patients.length;
  }
  const dataA: CatalogEntry[] = [];
  const dataB: CatalogEntry[] = [];
  for (const entry of catalog) {
    const set = patientSet.get(entry.patientId);
    if (set === 'A') {
      if (entry.label === 'pneumonia' || entry.label === 'covid') {
        throw new DatasetError(
          `${entry.file}: a ${entry.label} image cannot be in Data-A (normal vs other_disease only), but its patient "${entry.patientId}" is subset A`,
          { file: entry.file },
        );
      }
      dataA.push(entry);
    } else {
      dataB.push(entry);
    }
  }
  const share = all ? 'all-to-data-b' : 'patient-share';
  const rule: SetAssignmentRule = explicit === 0 ? share : shared === 0 ? 'subset-column' : `subset-column+${share}`;
  return { dataA, dataB, rule };
}

/**
 * Keeps at most `max` images per class, chosen by a seeded shuffle of the class's images in
 * imageId order (so the choice depends on the seed and the catalog, not on file-system order).
 */
export function capPerClass(entries: readonly CatalogEntry[], max: number | null, seed: number): CatalogEntry[] {
  if (max === null) return sortById(entries);
  const result: CatalogEntry[] = [];
  for (const label of DATA_B_CLASSES) {
    const ofClass = sortById(entries.filter((entry) => entry.label === label));
    result.push(...shuffled(ofClass, createRandom(seed, 'cap', label)).slice(0, max));
  }
  return sortById(result);
}

/**
 * Assigns every Data-B image a fold in 0..folds-1, grouped by patient (all images of one patient
 * share a fold) and stratified by class: patients are placed largest first (ties in seeded random
 * order) into the fold that keeps each class's share per fold most even (the greedy of
 * scikit-learn's StratifiedGroupKFold). With `stratifyBySource` the strata are class × source, so
 * each fold also holds about the same mix of sources per class.
 * @returns fold per imageId.
 * @throws DatasetError naming the class when it has fewer patients than folds, or when a fold ends
 *   up without any image of a class.
 */
export function assignFolds(entries: readonly CatalogEntry[], folds: number, seed: number, options: { stratifyBySource?: boolean } = {}): Map<string, number> {
  // Strata are classes, or class × source pairs so every fold also gets its share of each source.
  const stratumOf = (entry: CatalogEntry): string => (options.stratifyBySource ? `${entry.label}\u0000${entry.source}` : entry.label);
  const strata = [...new Set(entries.map(stratumOf))].sort(compareStrings);
  const stratumIndex = new Map(strata.map((key, index) => [key, index]));
  const strataCount = strata.length;
  const totals = new Array<number>(strataCount).fill(0);
  const patients = new Map<string, number[]>();
  for (const entry of entries) {
    const c = stratumIndex.get(stratumOf(entry)) ?? 0;
    totals[c] = (totals[c] ?? 0) + 1;
    const counts = patients.get(entry.patientId) ?? new Array<number>(strataCount).fill(0);
    counts[c] = (counts[c] ?? 0) + 1;
    patients.set(entry.patientId, counts);
  }
  for (const label of DATA_B_CLASSES) {
    const ofClass = entries.filter((entry) => entry.label === label);
    const patientCount = new Set(ofClass.map((entry) => entry.patientId)).size;
    if (patientCount < folds) {
      throw new DatasetError(
        `class "${label}" has ${patientCount} patient(s) (${ofClass.length} images) in Data-B, fewer than the ${folds} folds: every fold needs at least one patient of every class`,
      );
    }
  }
  const order = shuffled([...patients.keys()].sort(compareStrings), createRandom(seed, 'folds'));
  const size = (id: string): number => (patients.get(id) ?? []).reduce((a, b) => a + b, 0);
  // Stable sort keeps the seeded order among patients of equal size.
  order.sort((a, b) => size(b) - size(a));
  const foldCounts = Array.from({ length: folds }, () => new Array<number>(strataCount).fill(0));
  const foldOfPatient = new Map<string, number>();
  for (const patient of order) {
    const counts = patients.get(patient) ?? [];
    let best = 0;
    let bestScore = Infinity;
    let bestSize = Infinity;
    for (let k = 0; k < folds; k += 1) {
      let score = 0;
      for (let c = 0; c < strataCount; c += 1) {
        const total = totals[c] ?? 0;
        if (total === 0) continue;
        const shares = foldCounts.map((fold, j) => ((fold[c] ?? 0) + (j === k ? (counts[c] ?? 0) : 0)) / total);
        score += standardDeviation(shares);
      }
      const foldSize = (foldCounts[k] ?? []).reduce((a, b) => a + b, 0);
      if (score < bestScore - 1e-12 || (Math.abs(score - bestScore) <= 1e-12 && foldSize < bestSize)) {
        best = k;
        bestScore = score;
        bestSize = foldSize;
      }
    }
    foldOfPatient.set(patient, best);
    const target = foldCounts[best] ?? [];
    counts.forEach((count, c) => (target[c] = (target[c] ?? 0) + count));
  }
  const result = new Map(entries.map((entry) => [entry.imageId, foldOfPatient.get(entry.patientId) ?? 0]));
  for (let k = 0; k < folds; k += 1) {
    for (const label of DATA_B_CLASSES) {
      if (!entries.some((entry) => entry.label === label && result.get(entry.imageId) === k)) {
        throw new DatasetError(`fold ${k} has no "${label}" image; the patients of that class cannot be spread over ${folds} folds`);
      }
    }
  }
  return result;
}

/**
 * Splits Data-A into training and validation by patient, per main class (other_disease when the
 * patient has any, else normal), taking a seeded `validationShare` of each class's patients — or,
 * with `validationImages` (the paper's balanced 10,000 + 10,000), whole patients in seeded order
 * until each class has that many validation images (at least one patient always stays in training).
 * @returns split per imageId.
 * @throws DatasetError when a class has fewer than two patients (one for each split).
 */
export function splitDataA(
  entries: readonly CatalogEntry[],
  validationShare: number,
  seed: number,
  validationImages?: { normal: number; diseased: number },
): Map<string, 'train' | 'validation'> {
  const byPatient = groupBy(entries, (entry) => entry.patientId);
  const perClass = new Map<string, string[]>([
    ['normal', []],
    ['other_disease', []],
  ]);
  for (const [patient, items] of [...byPatient].sort((a, b) => compareStrings(a[0], b[0]))) {
    perClass.get(items.some((entry) => entry.label === 'other_disease') ? 'other_disease' : 'normal')?.push(patient);
  }
  const splitOfPatient = new Map<string, 'train' | 'validation'>();
  for (const [label, patients] of perClass) {
    if (patients.length < 2) {
      throw new DatasetError(
        `Data-A class "${label === 'other_disease' ? 'diseased' : 'normal'}" has ${patients.length} patient(s); at least 2 are needed for a training / validation split`,
      );
    }
    const order = shuffled(patients, createRandom(seed, 'data-a-validation', label));
    let validation = Math.min(Math.max(1, Math.round(order.length * validationShare)), order.length - 1);
    if (validationImages) {
      const wanted = label === 'other_disease' ? validationImages.diseased : validationImages.normal;
      let images = 0;
      validation = 0;
      while (validation < order.length - 1 && images < wanted) {
        images += byPatient.get(order[validation] ?? '')?.filter((entry) => entry.label === label).length ?? 0;
        validation += 1;
      }
    }
    order.forEach((patient, index) => splitOfPatient.set(patient, index < validation ? 'validation' : 'train'));
  }
  return new Map(entries.map((entry) => [entry.imageId, splitOfPatient.get(entry.patientId) ?? 'train']));
}

/** The part of a manifest item the leak checks need. */
export interface SplitItem {
  set: 'A' | 'B';
  imageId: string;
  patientId: string;
  fold?: number;
  split?: 'train' | 'validation';
}

/**
 * Fails loudly if the split leaks a patient: one patient in two Data-B folds, in both Data-A and
 * Data-B, or in both Data-A training and validation. Run on every manifest before it is written.
 * @throws DatasetError naming the patient and two of their images.
 */
export function checkSplitIntegrity(items: readonly SplitItem[]): void {
  const seen = new Map<string, { place: string; imageId: string }>();
  for (const item of items) {
    const place = item.set === 'B' ? `Data-B fold ${item.fold}` : `Data-A ${item.split}`;
    const before = seen.get(item.patientId);
    if (before && before.place !== place) {
      const what = before.place.startsWith('Data-B') && place.startsWith('Data-B') ? 'appears in two folds' : before.place.slice(0, 6) !== place.slice(0, 6) ? 'is in both Data-A and Data-B' : 'is in both Data-A training and validation';
      throw new DatasetError(`patient "${item.patientId}" ${what}: ${before.imageId} (${before.place}) and ${item.imageId} (${place})`);
    }
    if (!before) seen.set(item.patientId, { place, imageId: item.imageId });
  }
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

function sortById(entries: readonly CatalogEntry[]): CatalogEntry[] {
  return entries.slice().sort((a, b) => compareStrings(a.imageId, b.imageId));
}

function standardDeviation(values: readonly number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, b) => a + (b - mean) * (b - mean), 0) / values.length);
}
