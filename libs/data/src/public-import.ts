import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DataBClass, ExperimentConfig } from '@detl/config';
import { catalogEntrySchema, type CatalogEntry, type ImportResult } from './catalog';
import { csvLocation, parseCsv, type CsvRow } from './csv';
import { DatasetError } from './errors';
import { dropDuplicates } from './folder-import';
import { checkImages } from './image-check';
import { compareStrings } from './random';

/** The 14 NIH ChestX-ray14 findings plus "No Finding", as spelled in `Data_Entry_2017.csv`. */
export const NIH_FINDINGS = [
  'Atelectasis',
  'Cardiomegaly',
  'Consolidation',
  'Edema',
  'Effusion',
  'Emphysema',
  'Fibrosis',
  'Hernia',
  'Infiltration',
  'Mass',
  'Nodule',
  'Pleural_Thickening',
  'Pneumonia',
  'Pneumothorax',
  'No Finding',
] as const;

/** Shared options of the public-dataset importers. */
export interface PublicImportOptions {
  /** Folder the image file names are resolved under (searched recursively for NIH). */
  imagesRoot: string;
  onCorruptImage: ExperimentConfig['dataset']['onCorruptImage'];
  /**
   * A row whose image file is not there: stop (default), or leave it out with a warning — useful
   * when only part of a large public set was downloaded.
   */
  onMissingImage?: 'fail' | 'skip';
  onProgress?: (progress: { phase: string; done: number; total: number }) => void;
  /** JSON file caching which files decoded (see `checkImages`); unchanged files are not decoded again. */
  cacheFile?: string;
}

/** Options of {@link importNihChestXray14}. */
export interface NihImportOptions extends PublicImportOptions {
  /** Path of `Data_Entry_2017.csv`. */
  csvPath: string;
  /** Optional `train_val_list.txt` / `test_list.txt`: only images named there are imported. */
  listFiles?: string[];
  /** View positions to keep (default: all, i.e. PA and AP). */
  views?: string[];
}

/**
 * Imports NIH ChestX-ray14: `Data_Entry_2017.csv` (`Image Index`, `Finding Labels` joined by `|`,
 * `Patient ID`, `View Position`) and its PNGs anywhere under `imagesRoot` (the official download
 * spreads them over `images_001/images/…`). Class: `No Finding` → normal; any `Pneumonia` →
 * pneumonia; any other finding → other_disease. All findings are kept on the entry, so samplers can
 * pick by finding (the paper's 50 each of six findings). Patient id `nih:<Patient ID>`.
 * @throws DatasetError for a missing column, an unknown finding (line and column), a missing image
 *   (unless skipped), or an image in the folder that the CSV does not list.
 */
export async function importNihChestXray14(options: NihImportOptions): Promise<ImportResult> {
  const table = parseCsv(await readText(options.csvPath), options.csvPath, ['Image Index', 'Finding Labels', 'Patient ID', 'View Position']);
  const warnings: string[] = [];
  let allowed: Set<string> | null = null;
  for (const listFile of options.listFiles ?? []) {
    allowed ??= new Set<string>();
    for (const name of (await readText(listFile)).split(/\r?\n/)) if (name.trim()) allowed.add(name.trim());
  }
  const onDisk = await indexImages(options.imagesRoot, warnings);
  const listed = new Set<string>();
  const rows: { row: CsvRow; name: string; findings: string[]; file: string }[] = [];
  let missing = 0;
  for (const row of table.rows) {
    const at = (column: string): string => csvLocation(options.csvPath, row.line, column);
    const name = row.values['Image Index'] ?? '';
    if (!name || name.includes('/') || name.includes('\\')) throw new DatasetError(`${at('Image Index')}: expected a file name, got "${name}"`, { file: options.csvPath, line: row.line, column: 'Image Index' });
    listed.add(name);
    const findings = (row.values['Finding Labels'] ?? '').split('|').map((f) => f.trim());
    for (const finding of findings) {
      if (!(NIH_FINDINGS as readonly string[]).includes(finding)) {
        throw new DatasetError(`${at('Finding Labels')}: unknown finding "${finding}"; expected ${NIH_FINDINGS.join(', ')}`, {
          file: options.csvPath,
          line: row.line,
          column: 'Finding Labels',
        });
      }
    }
    if (findings.includes('No Finding') && findings.length > 1) {
      throw new DatasetError(`${at('Finding Labels')}: "No Finding" combined with findings`, { file: options.csvPath, line: row.line, column: 'Finding Labels' });
    }
    if (!(row.values['Patient ID'] ?? '')) throw new DatasetError(`${at('Patient ID')}: empty patient id`, { file: options.csvPath, line: row.line, column: 'Patient ID' });
    if (allowed && !allowed.has(name)) continue;
    if (options.views && !options.views.includes(row.values['View Position'] ?? '')) continue;
    const file = onDisk.get(name);
    if (!file) {
      if ((options.onMissingImage ?? 'fail') === 'fail') {
        throw new DatasetError(`${at('Image Index')}: image "${name}" is listed but not found under ${options.imagesRoot}`, {
          file: options.csvPath,
          line: row.line,
          column: 'Image Index',
        });
      }
      missing += 1;
      continue;
    }
    rows.push({ row, name, findings, file });
  }
  const unlisted = [...onDisk.keys()].filter((name) => !listed.has(name));
  if (unlisted.length > 0) {
    throw new DatasetError(`${options.imagesRoot}: ${unlisted.length} image(s) present but not listed in ${options.csvPath}: ${unlisted.slice(0, 5).join(', ')}`, {
      file: path.join(options.imagesRoot, onDisk.get(unlisted[0] ?? '') ?? ''),
    });
  }
  if (missing > 0) warnings.push(`${options.csvPath}: ${missing} listed images not found under ${options.imagesRoot}, left out`);
  return finish(rows, options, warnings, ({ row, name, findings }) => ({
    imageId: `nih/${name.replace(/\.png$/i, '')}`,
    source: 'nih-chestxray14',
    label: findings.includes('No Finding') ? 'normal' : findings.includes('Pneumonia') ? 'pneumonia' : 'other_disease',
    patientId: `nih:${row.values['Patient ID'] ?? ''}`,
    view: row.values['View Position'] ?? '',
    findings,
  }));
}

/** Options of {@link importCohenCovidCollection}. */
export interface CohenImportOptions extends PublicImportOptions {
  /** Path of the collection's `metadata.csv`. */
  metadataPath: string;
  /** Exact `finding` values mapped to a class, or to null to leave them out; checked before the default rules. */
  findingClasses?: Record<string, DataBClass | null>;
  /** Views kept (default PA, AP, AP Supine: the frontal X-ray views). */
  views?: string[];
}

/** Organisms / pneumonia types of the early (2020) flat `finding` values that mean pneumonia. */
const COHEN_PNEUMONIA_FINDINGS = [
  'SARS',
  'MERS-CoV',
  'MERS',
  'Streptococcus',
  'Staphylococcus aureus',
  'Pneumocystis',
  'Klebsiella',
  'Legionella',
  'Chlamydophila',
  'E.Coli',
  'Mycoplasma',
  'Mycoplasma Bacterial Pneumonia',
  'Influenza',
  'H1N1',
  'Varicella',
  'Herpes pneumonia',
  'Aspiration pneumonia',
  'Nocardia',
  'Lipoid',
  'Bacterial',
  'Aspergillosis',
  'Pneumonia',
];

/**
 * The default finding → class rule of the Cohen collection, documented here because it shapes
 * every covid / pneumonia count: `No Finding` → normal; any finding naming COVID-19 (`COVID-19`,
 * `COVID-19, ARDS`, `Pneumonia/Viral/COVID-19`) → covid; any other `Pneumonia/…` finding or one of
 * the organisms in the 2020 flat vocabulary (SARS, Streptococcus, Pneumocystis, …) → pneumonia;
 * everything else (ARDS alone, Tuberculosis, `todo`, `Unknown`) → left out (null). `overrides`
 * (exact strings) win over the rule.
 */
export function cohenFindingClass(finding: string, overrides: Record<string, DataBClass | null> = {}): DataBClass | null {
  if (Object.hasOwn(overrides, finding)) return overrides[finding] ?? null;
  if (finding === 'No Finding') return 'normal';
  if (/COVID-19/i.test(finding)) return 'covid';
  if (/^Pneumonia(\/|$)/.test(finding) || COHEN_PNEUMONIA_FINDINGS.includes(finding)) return 'pneumonia';
  return null;
}

/**
 * Imports the COVID-19 image data collection (Cohen et al.): `metadata.csv` (`patientid`,
 * `finding`, `view`, `filename`; `modality` and `folder` when present) and the files it names under
 * `imagesRoot`. Keeps X-rays (when `modality` exists) in the frontal views, maps `finding` with
 * {@link cohenFindingClass}, and states how many rows each rule left out. Patient id
 * `cohen:<patientid>`. A file listed on several rows (the collection has a few, under two patient
 * ids) is one image: kept once, its patients merged into one group `cohen:<id>+<id>` (also when the
 * filters keep only one of its rows), warned; when the rows give it different classes it is left
 * out, warned.
 * @throws DatasetError for a missing column, a bad file name (line and column), or a missing image
 *   (unless skipped).
 */
export async function importCohenCovidCollection(options: CohenImportOptions): Promise<ImportResult> {
  const table = parseCsv(await readText(options.metadataPath), options.metadataPath, ['patientid', 'finding', 'view', 'filename']);
  const views = options.views ?? ['PA', 'AP', 'AP Supine'];
  const warnings: string[] = [];
  const left = new Map<string, number>();
  const leaveOut = (why: string): void => void left.set(why, (left.get(why) ?? 0) + 1);
  const rows: { row: CsvRow; file: string; label: DataBClass; finding: string }[] = [];
  const seenFiles = new Map<string, { item: (typeof rows)[number]; repeats: { line: number; patient: string; label: DataBClass }[] }>();
  const patients = new PatientGroups();
  // A file listed under several patient ids shows they are one person, whichever of its rows the
  // filters below keep (a PA row and a lateral one, say): their images must share a patient group.
  const patientsByFile = new Map<string, { lines: number[]; ids: string[] }>();
  for (const row of table.rows) {
    const filename = row.values.filename ?? '';
    const patient = row.values.patientid ?? '';
    if (!filename || !patient) continue;
    const listed = patientsByFile.get(filename) ?? { lines: [], ids: [] };
    listed.lines.push(row.line);
    if (!listed.ids.includes(patient)) listed.ids.push(patient);
    patientsByFile.set(filename, listed);
  }
  for (const { ids } of patientsByFile.values()) for (const other of ids.slice(1)) patients.union(ids[0] as string, other);
  for (const row of table.rows) {
    const at = (column: string): string => csvLocation(options.metadataPath, row.line, column);
    const filename = row.values.filename ?? '';
    if (!filename || filename.startsWith('/') || filename.split(/[\\/]/).includes('..')) {
      throw new DatasetError(`${at('filename')}: "${filename}" must be a file name relative to the images folder, without ".."`, {
        file: options.metadataPath,
        line: row.line,
        column: 'filename',
      });
    }
    if (table.header.includes('modality') && row.values.modality !== 'X-ray') {
      leaveOut(`modality ${row.values.modality || '(empty)'}`);
      continue;
    }
    if (table.header.includes('folder') && row.values.folder && row.values.folder !== 'images') {
      leaveOut(`folder ${row.values.folder}`);
      continue;
    }
    if (!views.includes(row.values.view ?? '')) {
      leaveOut(`view ${row.values.view || '(empty)'}`);
      continue;
    }
    const finding = row.values.finding ?? '';
    const label = cohenFindingClass(finding, options.findingClasses);
    if (!label) {
      leaveOut(`finding ${finding || '(empty)'}`);
      continue;
    }
    const patient = row.values.patientid ?? '';
    if (!patient) throw new DatasetError(`${at('patientid')}: empty patient id`, { file: options.metadataPath, line: row.line, column: 'patientid' });
    patients.add(patient);
    const first = seenFiles.get(filename);
    if (first) {
      // The collection lists a few images twice, under two patient ids (e.g. 285 and 339, same
      // bytes): one image of one person, so it is kept once and the two patients become one group.
      first.repeats.push({ line: row.line, patient, label });
      continue;
    }
    const item = { row, file: filename.split('\\').join('/'), label, finding };
    seenFiles.set(filename, { item, repeats: [] });
    rows.push(item);
  }
  for (const [why, count] of [...left].sort((a, b) => compareStrings(a[0], b[0]))) warnings.push(`${options.metadataPath}: ${count} row(s) left out (${why})`);
  const conflicting = new Set<typeof rows[number]>();
  for (const [filename, { item, repeats }] of seenFiles) {
    if (repeats.length === 0) continue;
    const lines = [item.row.line, ...repeats.map((r) => r.line)].join(', ');
    const ids = [...new Set([item.row.values.patientid ?? '', ...repeats.map((r) => r.patient)])];
    const labels = [...new Set([item.label, ...repeats.map((r) => r.label)])];
    if (labels.length > 1) {
      // Which class the image shows cannot be told; it is left out rather than guessed.
      conflicting.add(item);
      warnings.push(`${options.metadataPath}: "${filename}" is listed on lines ${lines} as ${labels.join(' and ')}; left out`);
      continue;
    }
    const merged = ids.length > 1 ? `; patients ${ids.join(' and ')} merged into one patient group (cohen:${patients.group(ids[0] as string)})` : '';
    warnings.push(`${options.metadataPath}: "${filename}" is listed on lines ${lines}; kept once${merged}`);
  }
  for (const [filename, { lines, ids }] of patientsByFile) {
    const kept = seenFiles.get(filename);
    if (ids.length < 2 || (kept && kept.repeats.length > 0)) continue;
    // Only one of its rows (or none) passed the filters, but the patients are one person all the same.
    warnings.push(`${options.metadataPath}: "${filename}" is listed on lines ${lines.join(', ')} under patients ${ids.join(' and ')}; merged into one patient group (cohen:${patients.group(ids[0] as string)})`);
  }
  if (conflicting.size > 0) rows.splice(0, rows.length, ...rows.filter((item) => !conflicting.has(item)));
  const present: typeof rows = [];
  let missing = 0;
  for (const item of rows) {
    const exists = await stat(path.join(options.imagesRoot, ...item.file.split('/'))).then(
      (info) => info.isFile(),
      () => false,
    );
    if (exists) present.push(item);
    else if ((options.onMissingImage ?? 'fail') === 'fail') {
      throw new DatasetError(`${csvLocation(options.metadataPath, item.row.line, 'filename')}: image "${item.file}" is listed but not found under ${options.imagesRoot}`, {
        file: options.metadataPath,
        line: item.row.line,
        column: 'filename',
      });
    } else missing += 1;
  }
  if (missing > 0) warnings.push(`${options.metadataPath}: ${missing} listed images not found under ${options.imagesRoot}, left out`);
  return finish(present, options, warnings, ({ row, file, label, finding }) => ({
    imageId: `cohen/${file.replace(/\.(png|jpe?g)$/i, '')}`,
    source: 'cohen-covid-chestxray',
    label,
    patientId: `cohen:${patients.group(row.values.patientid ?? '')}`,
    view: row.values.view ?? '',
    findings: [finding],
  }));
}

/**
 * Patient ids that the source shows to be one person, joined (union-find). A group is named by its
 * ids in sorted order joined with `+` (`285+339`), a lone patient by its own id, so ids that were
 * never merged keep their names.
 */
class PatientGroups {
  private readonly parent = new Map<string, string>();

  add(id: string): void {
    if (!this.parent.has(id)) this.parent.set(id, id);
  }

  union(a: string, b: string): void {
    const [ra, rb] = [this.root(a), this.root(b)];
    if (ra !== rb) this.parent.set(rb, ra);
  }

  group(id: string): string {
    const root = this.root(id);
    const members = [...this.parent.keys()].filter((other) => this.root(other) === root);
    return members.length === 1 ? id : members.sort(compareStrings).join('+');
  }

  private root(id: string): string {
    this.add(id);
    let current = id;
    for (let next = this.parent.get(current) as string; next !== current; next = this.parent.get(current) as string) current = next;
    return current;
  }
}

/**
 * Joins several import results (e.g. NIH + Cohen) into one catalog; identical images across them
 * are reported and dropped like duplicates within one source.
 * @throws DatasetError when two sources use the same image id.
 */
export function mergeImports(...results: readonly ImportResult[]): ImportResult {
  const all = results.flatMap((r) => r.catalog).sort((a, b) => compareStrings(a.imageId, b.imageId));
  for (let i = 1; i < all.length; i += 1) {
    if (all[i]?.imageId === all[i - 1]?.imageId) throw new DatasetError(`image id "${all[i]?.imageId}" occurs in two imports`);
  }
  const { kept, duplicates } = dropDuplicates(all);
  return {
    catalog: kept,
    skipped: results.flatMap((r) => r.skipped),
    duplicates: [...results.flatMap((r) => r.duplicates), ...duplicates],
    warnings: results.flatMap((r) => r.warnings),
  };
}

async function finish<T extends { file: string }>(
  rows: readonly T[],
  options: PublicImportOptions,
  warnings: string[],
  describe: (row: T) => Omit<CatalogEntry, 'path' | 'file' | 'sha256'>,
): Promise<ImportResult> {
  const { checked, skipped } = await checkImages(
    rows.map((row) => ({ file: row.file, absolute: path.join(options.imagesRoot, ...row.file.split('/')) })),
    options.onCorruptImage,
    options.onProgress,
    options.cacheFile,
  );
  const byFile = new Map(rows.map((row) => [row.file, row]));
  const entries = checked
    .map((image) => {
      const row = byFile.get(image.file) as T;
      return catalogEntrySchema.parse({ ...describe(row), path: image.absolute, file: image.file, sha256: image.sha256 });
    })
    .sort((a, b) => compareStrings(a.imageId, b.imageId));
  const { kept, duplicates } = dropDuplicates(entries);
  if (duplicates.length > 0) warnings.push(`${duplicates.reduce((n, d) => n + d.dropped.length, 0)} duplicate images (identical bytes) dropped`);
  return { catalog: kept, skipped, duplicates, warnings };
}

/** Every PNG / JPEG under `root` by file name → path relative to root. */
async function indexImages(root: string, warnings: string[]): Promise<Map<string, string>> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => {
    throw new DatasetError(`${root}: images folder does not exist`, { file: root });
  });
  const index = new Map<string, string>();
  const relatives = entries
    .filter((e) => e.isFile() && /\.(png|jpe?g)$/i.test(e.name))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort(compareStrings);
  for (const relative of relatives) {
    const name = path.posix.basename(relative);
    if (index.has(name)) warnings.push(`${root}: "${name}" found twice (${index.get(name)} and ${relative}); using the first`);
    else index.set(name, relative);
  }
  return index;
}

async function readText(file: string): Promise<string> {
  return readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new DatasetError(`${file}: cannot read (${error.code ?? error.message})`, { file });
  });
}
