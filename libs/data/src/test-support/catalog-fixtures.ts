import type { DataBClass } from '@detl/config';
import type { CatalogEntry } from '../catalog';

/** A catalog entry for split tests; the file need not exist. */
export function entry(imageId: string, label: DataBClass, patientId: string, extra: Partial<CatalogEntry> = {}): CatalogEntry {
  return {
    imageId,
    source: 'test',
    path: `/nowhere/${imageId}.png`,
    file: `${imageId}.png`,
    label,
    patientId,
    sha256: '0'.repeat(64),
    ...extra,
  };
}

/** `patients` patients per class, each with 1–3 images (deterministic pattern). */
export function syntheticCatalog(patients: number, classes: readonly DataBClass[] = ['normal', 'pneumonia', 'other_disease', 'covid']): CatalogEntry[] {
  const entries: CatalogEntry[] = [];
  for (const label of classes) {
    for (let p = 0; p < patients; p += 1) {
      for (let i = 0; i < 1 + (p % 3); i += 1) entries.push(entry(`${label}/p${p}-${i}`, label, `${label}-p${p}`));
    }
  }
  return entries;
}
