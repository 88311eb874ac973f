import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { DATA_B_CLASSES, parseExperimentConfig } from '@detl/config';
import type {
  DatasetManifest,
  ImportSpec,
  ManifestSummary,
  SampleProgress,
  SampleResult,
  SourcePredictabilityReport,
} from '@detl/data';
import { InvalidObjectKeyError, parseManifestKey, validateObjectKey, type ObjectStore } from '@detl/storage';
import { CliError } from '../cli-error';
import { configFlagValue } from '../config-options';
import { openRuntime } from '../runtime';

// @detl/data (sharp, importers) is imported when a data command runs, so that other commands do not
// pay for loading it.
const loadData = () => import('@detl/data');

/** Flags of `detl data import` (commander's raw strings; validated by {@link dataImportCommand}). */
export interface DataImportFlags {
  imageSize: string;
  folds: string;
  seed: string;
  scale?: string;
  strict?: boolean;
  excludeSource: string[];
  excludeLowResolution?: boolean;
  stratifyBySource?: boolean;
  degradeTo?: string;
  onCorrupt: string;
  onMissing: string;
  sourceCheck: boolean;
  json?: boolean;
}

/** Flags of `detl data check`. */
export interface DataCheckFlags {
  sourceCheck?: boolean;
  json?: boolean;
}

/** Help text for the source syntax of `detl data import`, shown after the option list. */
export const DATA_IMPORT_HELP = `
Sources (one or more, in any combination; their images are merged, identical files dropped):
  folder <root>                                  root/<class>/*.png|jpg, optional labels.csv
  nih --csv <Data_Entry_2017.csv> --images <dir> [--lists <file>…] [--views PA,AP]
  cohen --metadata <metadata.csv> --images <dir> [--views PA,AP,AP Supine]

Examples:
  detl data import folder ../shared/datasets/cxr-real --degrade-to 16 --stratify-by-source
  detl data import --scale 0.02 nih --csv nih/Data_Entry_2017.csv --images nih/images cohen --metadata covid/metadata.csv --images covid/images`;

const SOURCE_KINDS = ['folder', 'nih', 'cohen'] as const;
type SourceKind = (typeof SOURCE_KINDS)[number];

/** Options each source kind takes, and which of them are required. */
const SOURCE_OPTIONS: Record<SourceKind, { options: string[]; required: string[] }> = {
  folder: { options: [], required: [] },
  nih: { options: ['--csv', '--images', '--lists', '--views'], required: ['--csv', '--images'] },
  cohen: { options: ['--metadata', '--images', '--views'], required: ['--metadata', '--images'] },
};

/**
 * `detl data import <source…>`: imports folder, NIH ChestX-ray14 and Cohen COVID-19 sources,
 * samples Data-A and Data-B (optionally at the paper's sizes times `--scale`), writes shards and the
 * manifest to S3, and prints the counts, warnings, shard reuse, the source-predictability check and
 * the manifest key. Every flag and path is checked before any service starts.
 */
export async function dataImportCommand(tokens: string[], flags: DataImportFlags): Promise<void> {
  // The flags that set config values are checked by the config schema (bounds, messages naming the field).
  const imageSize = configFlagValue('--image-size', 'dataset.imageSize', flags.imageSize);
  const folds = configFlagValue('--folds', 'dataset.folds', flags.folds);
  const seed = configFlagValue('--seed', 'seed', flags.seed);
  let scale: number | null = null;
  if (flags.scale !== undefined) {
    scale = Number(flags.scale);
    if (flags.scale.trim() === '' || !Number.isFinite(scale) || scale <= 0 || scale > 1) throw new CliError(`--scale ${flags.scale}: expected a number greater than 0 and at most 1`);
  }
  if (flags.strict && scale === null) throw new CliError("--strict: applies to the paper's sizes; give --scale too (--scale 1 for the full sizes)");
  const degradeToPixels = flags.degradeTo === undefined ? null : configFlagValue('--degrade-to', 'dataset.degradeToPixels', flags.degradeTo);
  if (degradeToPixels !== null && degradeToPixels >= imageSize) {
    throw new CliError(`--degrade-to ${degradeToPixels}: must be smaller than --image-size ${imageSize}, or it changes nothing`);
  }
  const onCorruptImage = configFlagValue('--on-corrupt', 'dataset.onCorruptImage', flags.onCorrupt);
  const onMissingImage = choiceFlag('--on-missing', flags.onMissing, ['fail', 'skip'] as const);
  for (const source of flags.excludeSource) if (source.trim() === '') throw new CliError('--exclude-source: expected a source name, got an empty one');
  const sources = parseSources(tokens);

  const config = parseExperimentConfig(
    { seed, dataset: { imageSize, folds, degradeToPixels, onCorruptImage } },
    'detl data import flags',
  );
  const { DatasetError, manifestSummary, sampleSources } = await loadData();
  const runtime = await openRuntime({ temporal: false, s3: true });
  try {
    let result: SampleResult;
    try {
      result = await sampleSources({
        sources,
        config,
        store: runtime.store,
        ...(scale !== null ? { paper: { scale, strict: flags.strict ?? false } } : {}),
        onMissingImage,
        confounds: {
          excludeSources: flags.excludeSource,
          excludeLowResolution: flags.excludeLowResolution ?? false,
          stratifyBySource: flags.stratifyBySource ?? false,
        },
        onProgress: progressPrinter(),
      });
    } catch (error) {
      if (error instanceof DatasetError) throw new CliError(error.message);
      throw error;
    }
    const summary = manifestSummary(result.manifest);
    const sourceCheck = flags.sourceCheck ? await sourceCheckOf(runtime.store, result.manifest) : null;
    if (flags.json) {
      console.log(
        JSON.stringify(
          {
            manifestKey: result.manifestKey,
            manifestUri: runtime.store.uri(result.manifestKey),
            counts: result.counts,
            summary,
            shardsWritten: result.shardsWritten,
            shardsReused: result.shardsReused,
            skipped: result.skipped,
            duplicates: result.manifest.duplicates.length,
            nearDuplicates: result.manifest.nearDuplicates,
            warnings: result.warnings,
            sourceCheck,
          },
          null,
          2,
        ),
      );
      return;
    }
    printSummary(result.manifest, summary);
    console.log(`\nshards: ${result.shardsWritten} written, ${result.shardsReused} reused (already in ${runtime.store.bucket})`);
    if (result.skipped.length > 0) {
      console.log(`\nskipped ${result.skipped.length} file(s):`);
      for (const file of result.skipped.slice(0, 20)) console.log(`  ${file.path}: ${file.reason}`);
      if (result.skipped.length > 20) console.log(`  … and ${result.skipped.length - 20} more (--json lists all)`);
    }
    if (result.manifest.duplicates.length > 0) console.log(`\n${result.manifest.duplicates.length} group(s) of identical files: the first of each kept`);
    printNearDuplicates(result.manifest.nearDuplicates);
    if (result.warnings.length > 0) {
      console.log('\nwarnings');
      for (const warning of result.warnings) console.log(`  - ${warning}`);
    }
    printSourceCheck(sourceCheck, flags.sourceCheck);
    console.log(`\nmanifest: ${result.manifestKey}`);
    console.log(`          ${runtime.store.uri(result.manifestKey)}`);
    console.log(`check it: detl data check ${result.manifestKey}`);
  } finally {
    await runtime.close();
  }
}

/**
 * `detl data check <manifest key>`: re-verifies a stored sampling (manifest hash, every shard's
 * presence, size and hash, item references, leak rules) and prints its counts. Exits non-zero when
 * anything is wrong.
 */
export async function dataCheckCommand(reference: string, flags: DataCheckFlags): Promise<void> {
  const { key, bucket } = manifestKeyOf(reference);
  const { loadManifest, manifestSummary, verifyManifest } = await loadData();
  const runtime = await openRuntime({ temporal: false, s3: true });
  try {
    if (bucket !== null && bucket !== runtime.store.bucket) throw new CliError(`${reference}: names bucket ${bucket}, but detl uses bucket ${runtime.store.bucket} (DETL_S3_BUCKET)`);
    if (!(await runtime.store.headObject(key))) throw new CliError(`${reference}: no such object in ${runtime.store.uri(key)}`);
    const verification = await verifyManifest(runtime.store, key);
    // A manifest that does not parse has no counts; the verification already says why.
    const manifest = await loadManifest(runtime.store, key).catch(() => null);
    const summary = manifest ? manifestSummary(manifest) : null;
    const sourceCheck = manifest && flags.sourceCheck && verification.problems.length === 0 ? await sourceCheckOf(runtime.store, manifest) : null;
    if (flags.json) {
      console.log(JSON.stringify({ ...verification, ok: verification.problems.length === 0, summary, sourceCheck }, null, 2));
    } else {
      if (manifest && summary) printSummary(manifest, summary);
      printNearDuplicates(verification.nearDuplicates);
      printSourceCheck(sourceCheck, flags.sourceCheck ?? false);
      if (verification.problems.length === 0) {
        console.log(`\n${runtime.store.uri(key)}: intact — ${verification.items} images in ${verification.shards} shards, hashes and leak rules checked`);
      }
    }
    if (verification.problems.length > 0) {
      const list = verification.problems.slice(0, 20).map((problem) => `  - ${problem}`);
      if (verification.problems.length > 20) list.push(`  … and ${verification.problems.length - 20} more (--json lists all)`);
      throw new CliError(`${runtime.store.uri(key)}: ${verification.problems.length} problem(s)\n${list.join('\n')}`);
    }
  } finally {
    await runtime.close();
  }
}

/** The near-duplicate pairs a sampling found (same picture, other bytes) and the patient groups it merged for them. */
function printNearDuplicates(found: { pairs: { a: string; b: string; hammingDistance: number; correlation: number }[]; mergedPatients: { patientId: string; members: string[] }[] }): void {
  console.log(`\nnear-duplicates: ${found.pairs.length} pair(s) after preprocessing, ${found.mergedPatients.length} patient group(s) merged so no pair spans a split`);
  for (const pair of found.pairs.slice(0, 10)) console.log(`  ${pair.a} ~ ${pair.b} (hash distance ${pair.hammingDistance}, detail correlation ${pair.correlation.toFixed(3)})`);
  if (found.pairs.length > 10) console.log(`  … and ${found.pairs.length - 10} more (--json lists all)`);
  for (const group of found.mergedPatients.slice(0, 10)) console.log(`  patient group ${group.patientId} = ${group.members.join(' + ')}`);
}

function choiceFlag<T extends string>(name: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new CliError(`${name} ${value}: expected one of ${choices.join(', ')}`);
  return value as T;
}

/**
 * Splits `folder <root> nih --csv … cohen --metadata …` into import specs, checking each path
 * exists. Commander passes these through untouched (the command allows unknown options), so
 * anything it does not know lands here and is named.
 */
function parseSources(tokens: string[]): ImportSpec[] {
  const specs: ImportSpec[] = [];
  let index = 0;
  while (index < tokens.length) {
    const kind = tokens[index] as string;
    if (!(SOURCE_KINDS as readonly string[]).includes(kind)) {
      const what = kind.startsWith('-') ? `unknown option ${kind}` : `unknown source kind "${kind}"`;
      throw new CliError(`${what}: sources are ${SOURCE_KINDS.map((k) => `"${k}"`).join(', ')} (see detl data import --help)`);
    }
    index += 1;
    const number = specs.length + 1;
    const label = `source ${number} (${kind})`;
    if (kind === 'folder') {
      const root = tokens[index];
      if (root === undefined || root.startsWith('-')) throw new CliError(`${label}: expected the dataset folder after "folder"`);
      index += 1;
      specs.push({ kind: 'folder', root: existingPath(`${label}: folder`, root, 'directory') });
      continue;
    }
    const values = new Map<string, string[]>();
    while (index < tokens.length && !(SOURCE_KINDS as readonly string[]).includes(tokens[index] as string)) {
      const token = tokens[index] as string;
      const [name, inline] = token.startsWith('--') && token.includes('=') ? [token.slice(0, token.indexOf('=')), token.slice(token.indexOf('=') + 1)] : [token, undefined];
      if (!SOURCE_OPTIONS[kind as SourceKind].options.includes(name)) {
        throw new CliError(`${label}: unknown option ${name}; ${kind} takes ${SOURCE_OPTIONS[kind as SourceKind].options.join(', ')}`);
      }
      if (values.has(name) && name !== '--lists') throw new CliError(`${label}: ${name} given twice`);
      index += 1;
      const taken: string[] = inline !== undefined ? [inline] : [];
      // --lists takes several files; the other options take exactly one value.
      while (inline === undefined && index < tokens.length && !(tokens[index] as string).startsWith('--') && !(SOURCE_KINDS as readonly string[]).includes(tokens[index] as string)) {
        taken.push(tokens[index] as string);
        index += 1;
        if (name !== '--lists') break;
      }
      if (taken.length === 0 || taken.some((value) => value === '')) throw new CliError(`${label}: ${name} needs a value`);
      values.set(name, [...(values.get(name) ?? []), ...taken]);
    }
    for (const required of SOURCE_OPTIONS[kind as SourceKind].required) {
      if (!values.has(required)) throw new CliError(`${label}: ${required} is required (${kind} ${SOURCE_OPTIONS[kind as SourceKind].required.map((r) => `${r} <…>`).join(' ')})`);
    }
    const one = (name: string, type: 'file' | 'directory') => existingPath(`${label}: ${name}`, (values.get(name) as string[])[0] as string, type);
    const views = values.get('--views')?.[0]?.split(',').map((view) => view.trim());
    if (views && views.some((view) => view === '')) throw new CliError(`${label}: --views ${values.get('--views')?.[0]}: expected comma-separated view names such as PA,AP`);
    if (kind === 'nih') {
      const lists = values.get('--lists')?.map((file) => existingPath(`${label}: --lists`, file, 'file'));
      specs.push({ kind: 'nih', csvPath: one('--csv', 'file'), imagesRoot: one('--images', 'directory'), ...(lists ? { listFiles: lists } : {}), ...(views ? { views } : {}) });
    } else {
      specs.push({ kind: 'cohen', metadataPath: one('--metadata', 'file'), imagesRoot: one('--images', 'directory'), ...(views ? { views } : {}) });
    }
  }
  if (specs.length === 0) throw new CliError('no source given: detl data import folder <root> | nih … | cohen … (see --help)');
  return specs;
}

function existingPath(what: string, value: string, type: 'file' | 'directory'): string {
  const resolved = path.resolve(value);
  if (!existsSync(resolved)) throw new CliError(`${what} ${value}: not found`);
  const isDirectory = statSync(resolved).isDirectory();
  if (type === 'directory' && !isDirectory) throw new CliError(`${what} ${value}: not a folder`);
  if (type === 'file' && isDirectory) throw new CliError(`${what} ${value}: is a folder, expected a file`);
  return resolved;
}

/** Accepts `manifests/<sha>.json` or `s3://<bucket>/manifests/<sha>.json`; the bucket is checked once the store is open. */
function manifestKeyOf(reference: string): { key: string; bucket: string | null } {
  const text = reference.trim();
  const uri = /^s3:\/\/([^/]+)\/(.+)$/.exec(text);
  const key = uri ? (uri[2] as string) : text;
  try {
    validateObjectKey(key);
  } catch (error) {
    if (error instanceof InvalidObjectKeyError) throw new CliError(`${reference}: ${error.message}`);
    throw error;
  }
  if (!parseManifestKey(key)) throw new CliError(`${reference}: expected a manifest key such as manifests/<sha256>.json (printed by detl data import)`);
  return { key, bucket: uri ? (uri[1] as string) : null };
}

async function sourceCheckOf(store: ObjectStore, manifest: DatasetManifest): Promise<SourcePredictabilityReport | { skipped: string }> {
  const sources = new Set(manifest.items.filter((item) => item.set === 'B').map((item) => item.source));
  if (sources.size < 2) return { skipped: `Data-B has ${sources.size} source; nothing to tell apart` };
  return (await loadData()).checkSourcePredictability(store, manifest);
}

function printSummary(manifest: DatasetManifest, summary: ManifestSummary): void {
  const classes = manifest.classes.dataB.length > 0 ? manifest.classes.dataB : [...DATA_B_CLASSES];
  const width = Math.max(...classes.map((c) => c.length), 8) + 2;
  console.log(`Data-B (${manifest.imageSize} px, ${summary.dataB.length} folds, patient-grouped)`);
  console.log(`  ${'fold'.padEnd(6)}${classes.map((c) => c.padStart(width)).join('')}${'total'.padStart(8)}${'patients'.padStart(10)}`);
  const totals = classes.map(() => 0);
  summary.dataB.forEach((fold, k) => {
    const counts = classes.map((c) => fold[c] ?? 0);
    counts.forEach((count, c) => (totals[c] = (totals[c] ?? 0) + count));
    console.log(`  ${String(k).padEnd(6)}${counts.map((n) => String(n).padStart(width)).join('')}${String(counts.reduce((a, b) => a + b, 0)).padStart(8)}${String(summary.dataBPatients[k] ?? 0).padStart(10)}`);
  });
  console.log(`  ${'all'.padEnd(6)}${totals.map((n) => String(n).padStart(width)).join('')}${String(totals.reduce((a, b) => a + b, 0)).padStart(8)}`);
  const dataAClasses = manifest.classes.dataA;
  console.log(`\nData-A (pretraining)`);
  console.log(`  ${'split'.padEnd(12)}${dataAClasses.map((c) => c.padStart(width)).join('')}`);
  for (const split of ['train', 'validation'] as const) {
    console.log(`  ${split.padEnd(12)}${dataAClasses.map((c) => String(summary.dataA[split][c] ?? 0).padStart(width)).join('')}`);
  }
  console.log('\nsources (images in Data-A / Data-B)');
  const sourceWidth = Math.max(0, ...Object.keys(summary.sources).map((source) => source.length)) + 2;
  for (const [source, counts] of Object.entries(summary.sources)) console.log(`  ${source.padEnd(sourceWidth)}${String(counts.A).padStart(6)} / ${counts.B}`);
}

function printSourceCheck(report: SourcePredictabilityReport | { skipped: string } | null, asked: boolean): void {
  if (!asked) return;
  console.log('\nsource predictability (image statistics → source, patient-grouped CV; high above chance = a shortcut a CNN can learn)');
  if (report === null) {
    console.log('  not run: the manifest has problems');
    return;
  }
  if ('skipped' in report) {
    console.log(`  not run: ${report.skipped}`);
    return;
  }
  const line = (name: string, score: { accuracy: number; chance: number; count: number }) =>
    console.log(`  ${name.padEnd(24)} ${(score.accuracy * 100).toFixed(1).padStart(5)}% vs chance ${(score.chance * 100).toFixed(1).padStart(5)}%  (${score.count} images)`);
  line('all Data-B', report.overall);
  for (const [className, score] of Object.entries(report.withinClass)) line(`within ${className}`, score);
}

function progressPrinter(): SampleProgress {
  const seen = new Set<string>();
  let lastPrint = 0;
  // Progress goes to stderr so that --json output stays parseable; sampling interleaves the
  // preprocess and upload phases, so print each phase's start and then at most every 2 s.
  return ({ phase, done, total }) => {
    const now = Date.now();
    if (seen.has(phase) && now - lastPrint < 2000) return;
    seen.add(phase);
    lastPrint = now;
    console.error(`${phase}: ${done}/${total}`);
  };
}
