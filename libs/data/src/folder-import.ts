import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { DATA_B_CLASSES, type DataBClass, type ExperimentConfig } from '@detl/config';
import { catalogEntrySchema, type CatalogEntry, type DuplicateGroup, type ImportResult } from './catalog';
import { checkImages } from './image-check';
import { csvLocation, parseCsv } from './csv';
import { DatasetError } from './errors';
import { compareStrings } from './random';

/** Options of {@link importFolderDataset}. */
export interface FolderImportOptions {
  /** An unreadable image (non-image bytes, truncated, empty) stops the import, or is reported and left out. */
  onCorruptImage: ExperimentConfig['dataset']['onCorruptImage'];
  /** Progress callback: `done` of `total` files read and decoded. */
  onProgress?: (progress: { phase: string; done: number; total: number }) => void;
  /** JSON file caching which files decoded (see `checkImages`); unchanged files are not decoded again. */
  cacheFile?: string;
}

/** Extensions read as images (case-insensitive). */
const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
/** Sub-folder reserved for lesion masks (`masks/<class>/<same name>.png`); never a class. */
const MASKS_FOLDER = 'masks';
const LABELS_FILE = 'labels.csv';

interface CsvInfo {
  label: DataBClass;
  patientId?: string;
  subset?: 'A' | 'B';
  source?: string;
  view?: string;
  lowResolution?: boolean;
  findings?: string[];
  line: number;
}

/**
 * Imports a folder-per-class dataset: `root/<class>/*.png|jpg|jpeg` with class folders among
 * normal / pneumonia / other_disease / covid, an optional `root/labels.csv` and optional lesion
 * masks under `root/masks/<class>/`.
 *
 * labels.csv needs `file` (relative to root) and `label`; optional columns: `patient_group`
 * (preferred patient key, as in cxr-real, because it merges IDs of the same person),
 * `patient_id`, `subset` (A / B), `source` (else `source_repo`, else the root folder's name),
 * `lowres_source` (1 / 0), `view`, `finding` (`|`-separated). Without labels.csv every image is its
 * own patient, which a warning states, since follow-up images of one person can then leak
 * across folds.
 *
 * Every image is decoded with sharp, so non-image bytes, truncated files and zero-byte files are
 * found here rather than mid-training. Files with identical bytes are reported and only the first
 * (in path order) is kept.
 * @throws DatasetError naming the folder, file, or CSV line and column of the first problem.
 */
export async function importFolderDataset(root: string, options: FolderImportOptions): Promise<ImportResult> {
  const rootStat = await stat(root).catch(() => null);
  if (!rootStat?.isDirectory()) throw new DatasetError(`${root}: dataset folder does not exist or is not a folder`, { file: root });
  const warnings: string[] = [];
  const files = await listClassFiles(root, warnings);
  if (files.length === 0) throw new DatasetError(`${root}: no images found (expected ${DATA_B_CLASSES.map((c) => `${c}/*.png`).join(', ')})`, { file: root });

  const labelsPath = path.join(root, LABELS_FILE);
  const csvText = await readFile(labelsPath, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw new DatasetError(`${labelsPath}: cannot read (${error.code ?? error.message})`, { file: labelsPath });
  });
  const csv = csvText === null ? null : readLabels(csvText, labelsPath, files);
  if (!csv) warnings.push(`${root}: no ${LABELS_FILE}; every image is treated as its own patient, so a patient's follow-up images may end up in different folds`);

  const fallbackSource = path.basename(path.resolve(root));
  const { checked, skipped } = await checkImages(
    files.map((file) => ({ file, absolute: path.join(root, ...file.split('/')) })),
    options.onCorruptImage,
    options.onProgress,
    options.cacheFile,
  );
  const maskFiles = new Set(await listMaskFiles(root));
  const stem = (file: string): string => file.replace(/\.(jpe?g|png)$/i, '');
  const stemCounts = new Map<string, number>();
  for (const file of files) stemCounts.set(stem(file), (stemCounts.get(stem(file)) ?? 0) + 1);
  const entries: CatalogEntry[] = [];
  for (const item of checked) {
    const folderLabel = item.file.split('/')[0] as DataBClass;
    const info = csv?.get(item.file);
    const maskRelative = `${MASKS_FOLDER}/${item.file.replace(/\.(jpe?g|png)$/i, '.png')}`;
    entries.push(
      catalogEntrySchema.parse({
        // The path without extension, unless a.png and a.jpg both exist: then the full name keeps ids unique.
        imageId: (stemCounts.get(stem(item.file)) ?? 0) > 1 ? item.file : stem(item.file),
        source: info?.source ?? fallbackSource,
        path: item.absolute,
        file: item.file,
        label: folderLabel,
        patientId: info?.patientId ?? `image:${item.file}`,
        ...(info?.subset ? { subset: info.subset } : {}),
        ...(info?.view ? { view: info.view } : {}),
        ...(info?.lowResolution !== undefined ? { lowResolution: info.lowResolution } : {}),
        ...(info?.findings ? { findings: info.findings } : {}),
        ...(maskFiles.has(maskRelative) ? { maskPath: path.join(root, ...maskRelative.split('/')) } : {}),
        sha256: item.sha256,
      }),
    );
  }
  const missingPatients = csv ? [...csv.values()].filter((info) => !info.patientId).length : 0;
  if (missingPatients > 0) warnings.push(`${labelsPath}: ${missingPatients} rows without patient_group / patient_id; each of those images is its own patient`);
  skipped.sort((a, b) => compareStrings(a.path, b.path));
  const { kept, duplicates } = dropDuplicates(entries);
  if (duplicates.length > 0) {
    warnings.push(`${duplicates.reduce((n, d) => n + d.dropped.length, 0)} duplicate images (identical bytes) dropped`);
  }
  return { catalog: kept, skipped, duplicates, warnings };
}

/** Relative `/`-separated paths of every image in the class folders, sorted. */
async function listClassFiles(root: string, warnings: string[]): Promise<string[]> {
  const files: string[] = [];
  const children = await readdir(root, { withFileTypes: true });
  for (const child of children.sort((a, b) => compareStrings(a.name, b.name))) {
    if (!child.isDirectory() || child.name.startsWith('.') || child.name === MASKS_FOLDER) continue;
    if (!(DATA_B_CLASSES as readonly string[]).includes(child.name)) {
      throw new DatasetError(
        `${path.join(root, child.name)}: unknown class folder "${child.name}"; class folders must be among ${DATA_B_CLASSES.join(', ')}`,
        { file: path.join(root, child.name) },
      );
    }
    const names = (await readdir(path.join(root, child.name), { withFileTypes: true })).sort((a, b) => compareStrings(a.name, b.name));
    for (const entry of names) {
      if (entry.name.startsWith('.')) continue;
      if (!entry.isFile() || !IMAGE_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) {
        warnings.push(`${path.join(root, child.name, entry.name)}: not a .png/.jpg/.jpeg file, ignored`);
        continue;
      }
      files.push(`${child.name}/${entry.name}`);
    }
  }
  return files;
}

async function listMaskFiles(root: string): Promise<string[]> {
  const result: string[] = [];
  for (const label of DATA_B_CLASSES) {
    const names = await readdir(path.join(root, MASKS_FOLDER, label)).catch(() => [] as string[]);
    for (const name of names) result.push(`${MASKS_FOLDER}/${label}/${name}`);
  }
  return result;
}

/** Reads labels.csv and cross-checks it against the files on disk. */
function readLabels(text: string, file: string, files: readonly string[]): Map<string, CsvInfo> {
  const table = parseCsv(text, file, ['file', 'label']);
  const onDisk = new Set(files);
  const byFile = new Map<string, CsvInfo>();
  const has = (column: string): boolean => table.header.includes(column);
  for (const { line, values } of table.rows) {
    const relative = values.file ?? '';
    if (relative === '') throw new DatasetError(`${csvLocation(file, line, 'file')}: empty file name`, { file, line, column: 'file' });
    if (relative.startsWith('/') || /^[A-Za-z]:/.test(relative) || relative.split(/[\\/]/).includes('..')) {
      throw new DatasetError(`${csvLocation(file, line, 'file')}: "${relative}" must be a path relative to the dataset folder, without ".."`, {
        file,
        line,
        column: 'file',
      });
    }
    const label = values.label ?? '';
    if (!(DATA_B_CLASSES as readonly string[]).includes(label)) {
      throw new DatasetError(`${csvLocation(file, line, 'label')}: unknown label "${label}"; expected one of ${DATA_B_CLASSES.join(', ')}`, {
        file,
        line,
        column: 'label',
      });
    }
    if (byFile.has(relative)) throw new DatasetError(`${csvLocation(file, line, 'file')}: "${relative}" is listed twice`, { file, line, column: 'file' });
    if (!onDisk.has(relative)) {
      throw new DatasetError(`${csvLocation(file, line, 'file')}: image "${relative}" is listed but not present in a class folder`, {
        file,
        line,
        column: 'file',
      });
    }
    const folder = relative.split('/')[0];
    if (folder !== label) {
      throw new DatasetError(`${csvLocation(file, line, 'label')}: label "${label}" disagrees with the image's folder "${folder}/"`, {
        file,
        line,
        column: 'label',
      });
    }
    const subsetText = values.subset ?? '';
    if (subsetText !== '' && subsetText !== 'A' && subsetText !== 'B') {
      throw new DatasetError(`${csvLocation(file, line, 'subset')}: subset must be A, B or empty, got "${subsetText}"`, { file, line, column: 'subset' });
    }
    const lowres = values.lowres_source ?? '';
    if (lowres !== '' && lowres !== '0' && lowres !== '1') {
      throw new DatasetError(`${csvLocation(file, line, 'lowres_source')}: expected 0, 1 or empty, got "${lowres}"`, { file, line, column: 'lowres_source' });
    }
    const patient = (has('patient_group') ? values.patient_group : '') || values.patient_id || '';
    const source = values.source || values.source_repo || '';
    const findings = (values.finding ?? '').split('|').map((f) => f.trim()).filter((f) => f.length > 0);
    byFile.set(relative, {
      label: label as DataBClass,
      line,
      ...(patient ? { patientId: patient } : {}),
      ...(subsetText ? { subset: subsetText as 'A' | 'B' } : {}),
      ...(source ? { source } : {}),
      ...(values.view ? { view: values.view } : {}),
      ...(lowres ? { lowResolution: lowres === '1' } : {}),
      ...(findings.length > 0 ? { findings } : {}),
    });
  }
  const unlisted = files.filter((relative) => !byFile.has(relative));
  if (unlisted.length > 0) {
    const shown = unlisted.slice(0, 5).join(', ');
    throw new DatasetError(`${file}: ${unlisted.length} image(s) present but not listed: ${shown}${unlisted.length > 5 ? ', …' : ''}`, {
      file: unlisted[0] ?? file,
    });
  }
  return byFile;
}

/** Keeps the first entry of each content hash (entries arrive in path order). */
export function dropDuplicates(entries: readonly CatalogEntry[]): { kept: CatalogEntry[]; duplicates: DuplicateGroup[] } {
  const byHash = new Map<string, CatalogEntry[]>();
  for (const entry of entries) {
    const group = byHash.get(entry.sha256);
    if (group) group.push(entry);
    else byHash.set(entry.sha256, [entry]);
  }
  const kept: CatalogEntry[] = [];
  const duplicates: DuplicateGroup[] = [];
  for (const entry of entries) {
    const group = byHash.get(entry.sha256);
    if (!group || group[0] !== entry) continue;
    kept.push(entry);
    if (group.length > 1) {
      duplicates.push({
        sha256: entry.sha256,
        kept: entry.file,
        dropped: group.slice(1).map((other) => other.file),
        conflictingLabels: group.some((other) => other.label !== entry.label),
      });
    }
  }
  return { kept, duplicates };
}
